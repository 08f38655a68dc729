// Saving a file the API answered (an export, the AGP report) through a temporary link: the
// API needs the bearer token, so a plain link to it would not do.

/** Saves a blob under `filename`. */
export function saveFile(blob: Blob, filename: string): void {
  const url = URL.createObjectURL(blob);
  const link = document.createElement('a');
  link.href = url;
  link.download = filename;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}
