/**
 * A native library's message with absolute paths (the build machine's sources, the server's own
 * files) cut to their last part, whitespace runs folded, and the length bounded: safe to show a client.
 */
export function redactPaths(text: string, maxLength = 500): string {
  return text.replace(/(?:\/[^\s/:'"()]+)+\/([^\s/:'"()]+)/g, "$1").replace(/\s+/g, " ").trim().slice(0, maxLength);
}
