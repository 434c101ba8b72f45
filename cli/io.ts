// Where a CLI command writes and reads: process streams in bin/kiln.js, buffers in tests.
// Commands never touch process.* directly, so they run in-process as well as spawned.

import { readFileSync } from "node:fs";
import path from "node:path";

export interface CliIO {
  out(text: string): void;
  err(text: string): void;
  /** All of standard input as text. */
  readStdin(): Promise<string>;
  readonly cwd: string;
  /** Standard output is a terminal: progress may redraw one line (absent: plain lines). */
  readonly isTTY?: boolean;
}

export const processIO: CliIO = {
  out: (text) => void process.stdout.write(text),
  err: (text) => void process.stderr.write(text),
  readStdin: async () => {
    const chunks: Buffer[] = [];
    for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks).toString("utf8");
  },
  cwd: process.cwd(),
  isTTY: process.stdout.isTTY === true,
};

/** An IO that records everything, with `stdin` as the text read from `-`. */
export function bufferIO(stdin = "", cwd = process.cwd()): CliIO & { readonly stdout: string; readonly stderr: string } {
  let stdout = "";
  let stderr = "";
  return {
    out: (text) => void (stdout += text),
    err: (text) => void (stderr += text),
    readStdin: async () => stdin,
    cwd,
    get stdout() {
      return stdout;
    },
    get stderr() {
      return stderr;
    },
  };
}

/** Reads a text file the user named, or stdin for `-`; a missing file is a user error. */
export async function readInputText(io: CliIO, file: string, readError: (message: string) => Error): Promise<{ text: string; name: string }> {
  if (file === "-") return { text: await io.readStdin(), name: "<stdin>" };
  try {
    return { text: readFileSync(resolveFrom(io.cwd, file), "utf8"), name: file };
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw readError(
      code === "ENOENT"
        ? `cannot read '${file}': no such file`
        : code === "EISDIR"
          ? `cannot read '${file}': it is a directory`
          : `cannot read '${file}': ${(e as Error).message}`,
    );
  }
}

export const resolveFrom = (cwd: string, file: string): string => path.resolve(cwd, file);
