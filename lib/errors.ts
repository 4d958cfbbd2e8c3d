// Every error Twill raises carries a machine-readable code and a sentence a
// person can act on. `details` holds the raw cause (a kernel message, a path).
export class TwillError extends Error {
  readonly code: string;
  readonly details: string | undefined;

  constructor(code: string, message: string, details?: string) {
    super(message);
    this.name = "TwillError";
    this.code = code;
    this.details = details;
  }
}

export function errorText(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
