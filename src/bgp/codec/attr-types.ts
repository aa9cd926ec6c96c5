/**
 * The types of path attributes (RFC 4271 §4.3, §5; RFC 4760; RFC 6793; RFC 8092) and of one
 * entry of the attribute table (attributes.ts holds the table, mpattr.ts its MP_REACH/MP_UNREACH
 * entries): in a file of their own so the two can share them without importing each other.
 */
import type { Reader, Writer } from "./buf.ts";
import type { OriginValue } from "./constants.ts";
import type { ErrorAction } from "./errors.ts";
import type { Prefix } from "./prefix.ts";

export interface AsPathSegment {
  /** 1 AS_SET, 2 AS_SEQUENCE, 3 AS_CONFED_SEQUENCE, 4 AS_CONFED_SET. */
  type: number;
  asns: number[];
}

export interface Aggregator {
  asn: number;
  address: string;
}

export type LargeCommunity = [number, number, number];

export interface MpReach {
  afi: number;
  safi: number;
  /** One address, or global + link-local for IPv6 (RFC 2545 §3). */
  nextHops: string[];
  nlri: Prefix[];
  /** For AFI/SAFI we do not parse: next hop and NLRI bytes as received. */
  raw?: Uint8Array;
}

export interface MpUnreach {
  afi: number;
  safi: number;
  withdrawn: Prefix[];
  raw?: Uint8Array;
}

export interface RawAttribute {
  flags: number;
  type: number;
  value: Uint8Array;
}

export interface PathAttributes {
  origin?: OriginValue;
  asPath?: AsPathSegment[];
  nextHop?: string;
  med?: number;
  localPref?: number;
  atomicAggregate?: boolean;
  aggregator?: Aggregator;
  communities?: number[];
  originatorId?: string;
  clusterList?: string[];
  mpReach?: MpReach;
  mpUnreach?: MpUnreach;
  as4Path?: AsPathSegment[];
  as4Aggregator?: Aggregator;
  largeCommunities?: LargeCommunity[];
  unknown?: RawAttribute[];
}

export interface AttrContext {
  /** RFC 6793: 4-octet AS numbers in AS_PATH/AGGREGATOR when both sides sent the capability. */
  as4: boolean;
  /** Some RFC 7606 actions differ for external peers (e.g. LOCAL_PREF from eBGP is discarded). */
  ebgp?: boolean;
}

export interface AttrSpec {
  name: string;
  /** Expected Optional and Transitive bits (RFC 4271 §6.3 checks them). */
  flags: number;
  /** RFC 7606 action for a malformed instance. */
  action: (ctx: AttrContext) => ErrorAction;
  decode: (r: Reader, ctx: AttrContext, out: PathAttributes) => void;
  /** Writes the value; returns false when the attribute is absent. */
  encode: (w: Writer, a: PathAttributes, ctx: AttrContext) => boolean;
}
