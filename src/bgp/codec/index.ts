/**
 * The BGP wire codec, pure: no sockets, no clocks. Re-exports the pieces the session and tests use.
 */
export * from "./attributes.ts";
export * from "./attrlist.ts";
export * from "./community.ts";
export * from "./constants.ts";
export * from "./errors.ts";
export * from "./framer.ts";
export * from "./messages.ts";
export * from "./open.ts";
export * from "./pack.ts";
export * from "./prefix.ts";
