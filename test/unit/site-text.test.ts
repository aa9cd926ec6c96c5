/**
 * siteText one document at a time (src/config/site-text.ts) gives what parsing the whole text at
 * once gives, for texts built from pieces that stress the split: comments before, between and
 * after documents, empty documents, `--- {}` on the marker's line, CRLF, block scalars, anchors,
 * NodeSettings anywhere, and the texts the split refuses (directives, `...`, a BOM).
 */

import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { siteText, siteTextWhole } from "../../src/config/site-text.ts";

const PIECES = [
  "apiVersion: vipd.io/v1alpha1\nkind: NodeSettings\nmetadata: { name: n1 }\nspec: { nodeName: n1 }\n",
  "# the site's pool\napiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: { name: lan, namespace: metallb-system }\nspec: { addresses: [198.51.100.10-198.51.100.20] }\n",
  "apiVersion: v1\nkind: Service\nmetadata:\n  name: a   # trailing comment\n  annotations:\n    note: |\n      line one\n        indented\n      --- not a marker (indented)\nspec: { type: LoadBalancer, ports: [{ port: 80 }] }\n",
  "apiVersion: v1\nkind: Service\nmetadata: &m { name: b, namespace: x }\nspec:\n  type: LoadBalancer\n  selector: *m\n",
  "# only a comment\n",
  "",
  "kind: NodeSettings\n# a comment after it\n",
  "{ kind: Service, metadata: { name: c } }\n",
  "- a list\n- not an object\n",
  "plain scalar\n",
  "key: 'single ''quoted'''\nother: \"double \\\"quoted\\\"\"\n",
];

const MARKERS = ["---\n", "--- # a comment on the marker\n", "---\n\n# between\n", "--- "];

function build(parts: { piece: number; marker: number }[], crlf: boolean, lead: string): string {
  let t = lead;
  parts.forEach((p, i) => {
    if (i > 0 || p.marker % 2 === 1) t += MARKERS[p.marker % MARKERS.length];
    t += PIECES[p.piece % PIECES.length];
  });
  return crlf ? t.replace(/\n/g, "\r\n") : t;
}

function outcome(f: (t: string) => string, t: string): { ok: true; text: string } | { ok: false } {
  try {
    return { ok: true, text: f(t) };
  } catch {
    return { ok: false };
  }
}

describe("siteText one document at a time", () => {
  test("equals the whole text's, for random texts of the pieces", () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ piece: fc.nat(), marker: fc.nat() }), { maxLength: 12 }),
        fc.boolean(),
        fc.constantFrom("", "# leading comment\n", "\n\n", "# a\n# b\n\n"),
        (parts, crlf, lead) => {
          const t = build(parts, crlf, lead);
          expect(outcome(siteText, t)).toEqual(outcome(siteTextWhole, t));
        },
      ),
      { numRuns: 500 },
    );
  });

  test("texts the split refuses are parsed whole, with the same result", () => {
    for (const t of [
      "%YAML 1.2\n---\nkind: Service\nmetadata: { name: a }\n",
      "kind: Service\nmetadata: { name: a }\n...\n---\nkind: Pool\n",
      "\uFEFFkind: Service\nmetadata: { name: a }\n---\nkind: NodeSettings\n",
    ])
      expect(siteText(t)).toBe(siteTextWhole(t));
  });

  test("NodeSettings are left out, the rest kept in order with comments", () => {
    const t = build(
      [
        { piece: 0, marker: 0 },
        { piece: 1, marker: 0 },
        { piece: 2, marker: 1 },
      ],
      false,
      "",
    );
    const s = siteText(t);
    expect(s).not.toContain("NodeSettings");
    expect(s).toContain("# the site's pool");
    expect(s).toContain("# a comment on the marker");
    expect(s.indexOf("IPAddressPool")).toBeLessThan(s.indexOf("kind: Service"));
    expect(siteText(s)).toBe(s);
  });
});
