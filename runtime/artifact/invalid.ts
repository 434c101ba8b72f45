// The one error the runtime throws for a file it cannot trust (an artifact folder's file, a
// safetensors file): its message is one line, `<file>: <why>`. The DSL and CLI rewrap it as a
// KilnError("artifact-invalid"); the runtime never imports the compiler's error class.

/**
 * A folder that cannot be trusted: wrong schema, a file missing, a hash that does not match.
 * The message names the file and the field; `code` matches KilnError's "artifact-invalid"
 * (the runtime cannot import the compiler's error class, so callers there rewrap it).
 */
export class ArtifactInvalidError extends Error {
  readonly code = "artifact-invalid";
  constructor(
    readonly file: string,
    readonly why: string,
  ) {
    super(`${file}: ${why}`);
    this.name = "ArtifactInvalidError";
  }
}
