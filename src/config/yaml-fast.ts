/**
 * A fast path for parsing one YAML document: Bun's native parser (Bun.YAML.parse, ~20× faster and
 * far lighter than the `yaml` package), used only when the document's text is in a plain subset on
 * which both parsers give the same value. `fastDocument` returns undefined for anything else, and
 * the caller parses that document with the `yaml` package as before (src/config/load.ts).
 *
 * Where the parsers differ (found by test/unit/yaml-fast.test.ts and by hand, Bun 1.4.5 against
 * yaml 2 with vipd's options): duplicate keys (yaml: an error; Bun: the last wins), `null:` / `~:`
 * keys (yaml "", Bun "null"), signed hexadecimal `+0x1` / `-0x1` (yaml a string, Bun a number),
 * `%YAML 1.1` directives (yaml reads `yes` as true), collection keys, tags (`!!binary`, `!!int`),
 * comment-only and empty documents (yaml: no document; Bun: null). So the subset is refused when:
 *  - the text holds, outside quoted strings, any of `! & * % ? | > < @` or a backquote (tags,
 *    anchors, aliases, directives, explicit keys, block scalars, merge keys, reserved), a tab, a
 *    carriage return, a byte order mark or a Unicode line break, or a backslash in a double-quoted
 *    string (escapes);
 *  - a plain word could read as something other than a string or a decimal integer in one of the
 *    parsers (`+1`, `.5`, `0x1F`, `1e3`, `.inf`, ...): only letters-first words, decimal integers
 *    of up to 15 digits, `n.n` decimals, `-n`, `~`, dotted quads and words with a letter beyond
 *    `f`, a `/`, `:` or `-` that cannot be numbers are accepted;
 *  - a flow mapping entry has no `:` (an implicit null key), a flow sequence holds a pair, a `:`
 *    has no key before it, or a flow collection is left open;
 *  - the value is not a mapping, holds anything but mappings, lists, strings, finite numbers,
 *    booleans and null, has a key that is not a plain name (`null`, `true`, `__proto__`, empty,
 *    a number, ...) or has fewer keys than the text has `:` indicators — a key given twice.
 * Being conservative costs only speed: a refused document takes the `yaml` package's path.
 */

/** A document read by the fast path: its value and the line (1-based) its content starts at. */
export interface FastDocument {
  value: Record<string, unknown>;
  line: number;
}

const NL = 10;
const SP = 32;
const HASH = 35;
const DQ = 34;
const SQ = 39;
const COLON = 58;
const COMMA = 44;
const DASH = 45;
const LSQ = 91;
const RSQ = 93;
const LCU = 123;
const RCU = 125;

/** Characters refused outside quoted strings (and tab, CR, BOM, line breaks anywhere). */
const REFUSED = new Set([..."!&*%?|><@`\t\r\\"].map((c) => c.charCodeAt(0)));
const REFUSED_ANYWHERE = /[\t\r\uFEFF\u0085\u2028\u2029]/;

/** A plain word may only hold these (ASCII; anything else is refused). */
const WORD_CHAR = /^[A-Za-z0-9_./:=$()+~,-]$/;
const wordChars = new Uint8Array(128);
for (let c = 0; c < 128; c++) if (WORD_CHAR.test(String.fromCharCode(c))) wordChars[c] = 1;

const SPECIAL_KEYS = new Set(["null", "Null", "NULL", "true", "True", "TRUE", "false", "False", "FALSE"]);
const KEY = /^[A-Za-z_][A-Za-z0-9_./-]*$/;

/** Whether a plain word reads the same in both parsers (a string, or a decimal number). */
export function safeWord(w: string): boolean {
  const c = w.charCodeAt(0);
  if ((c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95 || c === 47) return true; // letter, _, /
  if (w === "~") return true;
  if (c === DASH) return /^-[1-9][0-9]{0,14}$/.test(w);
  if (c >= 48 && c <= 57) {
    if (/^[0-9]{1,15}$/.test(w) || /^(?:0|[1-9][0-9]{0,14})\.[0-9]{1,15}$/.test(w)) return true;
    if (/^[0-9]{1,3}(?:\.[0-9]{1,3}){2,}(?:\/[0-9]{1,3})?$/.test(w)) return true; // dotted quad, CIDR
    // Cannot be a number in either: a letter beyond f, or a / or :, or a - without an exponent.
    if (/[0-9]x|[0-9]o|[eE][-+]?[0-9]|^[0-9]+\.?$|_/.test(w)) return false;
    return /[g-zG-Z/:]/.test(w) || w.includes("-");
  }
  return false;
}

interface Frame {
  open: number;
  entry: boolean;
  pair: boolean;
}

/**
 * Checks the text and counts its `:` indicators; undefined when it is outside the subset.
 * Returns the indicator count and the line of the first token.
 */
function scan(text: string): { indicators: number; line: number } | undefined {
  if (REFUSED_ANYWHERE.test(text)) return undefined;
  const n = text.length;
  const flow: Frame[] = [];
  let line = 1;
  let first = 0;
  let indicators = 0;
  let hadKey = false; // a scalar ended since the last separator (a `:` may follow)
  let content = false;
  let i = 0;
  const token = () => {
    if (first === 0) first = line;
    content = true;
    const f = flow[flow.length - 1];
    if (f !== undefined) f.entry = true;
  };
  while (i < n) {
    const c = text.charCodeAt(i);
    const prev = i === 0 ? NL : text.charCodeAt(i - 1);
    if (c === NL) {
      line++;
      i++;
      if (flow.length === 0) hadKey = false;
      continue;
    }
    if (c === SP) {
      i++;
      continue;
    }
    if (c === HASH && (prev === SP || prev === NL)) {
      const e = text.indexOf("\n", i);
      i = e < 0 ? n : e;
      continue;
    }
    if (c === DASH && prev === NL && text.startsWith("---", i)) {
      const after = text.charCodeAt(i + 3);
      if (Number.isNaN(after) || after === SP || after === NL) {
        if (content) return undefined;
        i += 3;
        while (text.charCodeAt(i) === SP) i++;
        if (i < n && text.charCodeAt(i) !== NL && text.charCodeAt(i) !== HASH) return undefined;
        continue;
      }
    }
    if (c === DQ || c === SQ) {
      token();
      let j = i + 1;
      for (;;) {
        if (j >= n) return undefined;
        const d = text.charCodeAt(j);
        if (d === NL) line++;
        else if (d === 92 && c === DQ)
          return undefined; // an escape
        else if (d === c) {
          if (c === SQ && text.charCodeAt(j + 1) === SQ) j++;
          else break;
        }
        j++;
      }
      i = j + 1;
      const after = text.charCodeAt(i);
      if (
        !(
          Number.isNaN(after) ||
          after === SP ||
          after === NL ||
          after === COLON ||
          (flow.length > 0 && (after === COMMA || after === RSQ || after === RCU))
        )
      )
        return undefined;
      hadKey = true;
      continue;
    }
    if (c === LSQ || c === LCU) {
      token();
      flow.push({ open: c, entry: false, pair: false });
      hadKey = false;
      i++;
      continue;
    }
    if (c === RSQ || c === RCU || c === COMMA) {
      const f = flow[flow.length - 1];
      if (f === undefined) {
        if (c === COMMA) {
          // Inside a plain word of block context (e.g. `a,b`): read as part of the word below.
        } else return undefined;
      } else {
        if (f.open === LCU && f.entry && !f.pair) return undefined; // `{a}`: a key without `:`
        if (c === COMMA) {
          f.entry = false;
          f.pair = false;
        } else {
          if ((c === RSQ) !== (f.open === LSQ)) return undefined;
          flow.pop();
        }
        hadKey = false; // a collection is never a key here (`[a]: x` is refused at its `:`)
        i++;
        continue;
      }
    }
    if (c === COLON) {
      const after = text.charCodeAt(i + 1);
      const ends =
        Number.isNaN(after) ||
        after === SP ||
        after === NL ||
        (flow.length > 0 && (after === COMMA || after === RSQ || after === RCU));
      if (ends) {
        if (!hadKey) return undefined; // an empty key
        const f = flow[flow.length - 1];
        if (f !== undefined) {
          if (f.open === LSQ || f.pair) return undefined; // a pair in a list, or `a: b: c`
          f.pair = true;
        }
        indicators++;
        hadKey = false;
        i++;
        continue;
      }
      if (flow.length > 0) return undefined;
    }
    if (c === DASH) {
      const after = text.charCodeAt(i + 1);
      if (Number.isNaN(after) || after === SP || after === NL) {
        if (flow.length > 0) return undefined;
        token();
        hadKey = false;
        i++;
        continue;
      }
    }
    if (c >= 128 || wordChars[c] !== 1 || REFUSED.has(c)) return undefined;
    // A plain word: up to a space, a line end, a `:` indicator, or (in flow) a flow character.
    token();
    let j = i;
    for (; j < n; j++) {
      const d = text.charCodeAt(j);
      if (d === SP || d === NL) break;
      if (d === COLON) {
        const a = text.charCodeAt(j + 1);
        if (Number.isNaN(a) || a === SP || a === NL) break;
        if (flow.length > 0) return undefined;
        continue;
      }
      if (flow.length > 0 && (d === COMMA || d === LSQ || d === RSQ || d === LCU || d === RCU)) break;
      if (d >= 128 || wordChars[d] !== 1) {
        if (d === HASH) continue; // `a#b` is one word
        return undefined;
      }
    }
    if (!safeWord(text.slice(i, j))) return undefined;
    hadKey = true;
    i = j;
  }
  if (flow.length > 0 || first === 0) return undefined;
  return { indicators, line: first };
}

/** Counts the keys of a parsed value, or -1 when it holds anything outside the subset. */
function countKeys(v: unknown): number {
  if (v === null || typeof v === "string" || typeof v === "boolean") return 0;
  if (typeof v === "number") return Number.isFinite(v) ? 0 : -1;
  if (Array.isArray(v)) {
    let k = 0;
    for (const x of v) {
      const c = countKeys(x);
      if (c < 0) return -1;
      k += c;
    }
    return k;
  }
  if (typeof v !== "object" || Object.getPrototypeOf(v) !== Object.prototype) return -1;
  let k = 0;
  for (const key of Object.keys(v)) {
    if (!KEY.test(key) || SPECIAL_KEYS.has(key) || key === "__proto__") return -1;
    const c = countKeys((v as Record<string, unknown>)[key]);
    if (c < 0) return -1;
    k += c + 1;
  }
  return k;
}

/**
 * One document's text (a part from splitDocuments: at most one `---`, at its start) read by
 * Bun.YAML.parse, when that is certain to equal what the `yaml` package gives with vipd's options
 * (PARSE_OPTIONS, then toJS); undefined otherwise.
 */
export function fastDocument(text: string): FastDocument | undefined {
  const s = scan(text);
  if (s === undefined) return undefined;
  let value: unknown;
  try {
    value = Bun.YAML.parse(text);
  } catch {
    return undefined;
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) return undefined;
  if (countKeys(value) !== s.indicators) return undefined;
  return { value: value as Record<string, unknown>, line: s.line };
}
