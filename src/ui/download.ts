/** Hands bytes to the browser as a file download (the Train panel's exports). */
export function offerDownload(name: string, bytes: Uint8Array): void {
  const url = URL.createObjectURL(new Blob([bytes as BlobPart], { type: 'application/octet-stream' }));
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  a.rel = 'noopener';
  document.body.append(a);
  a.click();
  a.remove();
  // The download has its own copy once started; a minute covers a slow save dialog.
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}
