// The part of Bun's built-in FFI module the plugin uses (the plugin binary
// runs on Bun; see scripts/build.sh). Node never loads the module importing it.
declare module "bun:ffi" {
  export type Pointer = number;
  export const FFIType: { i32: number; i64: number; u64: number; ptr: number; cstring: number; u32: number };
  export function dlopen<T extends Record<string, { args: number[]; returns: number }>>(
    path: string,
    symbols: T,
  ): { symbols: { [K in keyof T]: (...args: unknown[]) => number | bigint } };
  export function ptr(view: ArrayBufferView): Pointer;
  export const read: { i32(p: Pointer, offset?: number): number };
}
