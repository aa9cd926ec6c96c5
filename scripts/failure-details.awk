# Prints, for each failed bun test in a log, its name and the error bun printed before it (from
# the "error:" line on, at most 25 lines; the last 15 lines when there is none). CI shows only the
# tail of the log, so the reason a test failed must be repeated there. Bun's closing summary lists
# the failures again without their errors: those repeats have no lines of their own and are skipped.
function flush_fail(name,    i, start, n) {
  if (nbuf == 0 || (name in seen)) { nbuf = 0; return }
  seen[name] = 1
  start = 0
  for (i = 0; i < nbuf; i++) if (buf[i] ~ /^error:/) { start = i; break }
  if (i == nbuf) start = nbuf > 15 ? nbuf - 15 : 0
  print name
  n = 0
  for (i = start; i < nbuf && n < 25; i++) { print "    " buf[i]; n++ }
  if (nbuf - start > 25) print "    ... (" (nbuf - start - 25) " more lines in the full log)"
  nbuf = 0
}
/^\((pass|skip|todo)\) / || /^[^ ].*\.test\.ts:$/ { nbuf = 0; next }
/^\(fail\) / { flush_fail($0); next }
{ if (nbuf < 400) buf[nbuf++] = $0 }
