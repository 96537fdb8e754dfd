/** Haraka's SMTP reply objects (a basic code with an enhanced status); the package ships no types of its own. */
declare module 'haraka-dsn' {
  class DSN {
    code: number;
    reply: string | string[];
    /** `code` basic reply code, `msg` text, `subject`.`detail` of the enhanced status (class from the code). */
    static create(code: number, msg: string, subject: number, detail: number): DSN;
  }
  export = DSN;
}
