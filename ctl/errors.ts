/** An error twillctl reports in one line and exits with (codes: lib/ctl-api.ts EXIT, docs/twillctl.md). */
export class CtlError extends Error {
  readonly exit: number;

  constructor(exit: number, message: string) {
    super(message);
    this.exit = exit;
  }
}
