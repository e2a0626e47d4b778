// Photos and text files attached to a prompt: checked and made small on the phone, then sent as
// opencode `file` parts (data URLs), so nothing but the prompt itself leaves the phone.

export interface Attachment {
  filename: string;
  mime: string;
  url: string; // a data: URL
  size: number; // bytes of the data sent
}

export const MAX_INPUT_BYTES = 25 << 20; // what the phone will even open
export const MAX_TEXT_BYTES = 256 << 10;
export const MAX_IMAGE_BYTES = 1.5 * (1 << 20);
export const MAX_SIDE = 2048;

const TEXT_NAME = /\.(txt|md|json|ya?ml|toml|csv|log|py|ts|tsx|js|go|rs|java|c|h|cpp|sh|html|css|sql|diff|patch)$/i;

function mb(bytes: number): string {
  return `${(bytes / (1 << 20)).toFixed(1)} MB`;
}

/** Why `file` cannot be attached, in one line; null when it can. */
export function refusal(file: { name: string; type: string; size: number }): string | null {
  const image = file.type.startsWith("image/");
  const text = file.type.startsWith("text/") || TEXT_NAME.test(file.name);
  if (!image && !text) return `${file.name}: only photos and text files can be attached`;
  if (file.size > MAX_INPUT_BYTES) return `${file.name} is ${mb(file.size)}: at most ${mb(MAX_INPUT_BYTES)}`;
  if (!image && file.size > MAX_TEXT_BYTES) return `${file.name} is ${mb(file.size)}: a text file is at most 256 KB`;
  return null;
}

/** The size that fits within `max` on its longer side, keeping the aspect ratio. */
export function fitted(width: number, height: number, max = MAX_SIDE): { width: number; height: number } {
  const scale = Math.min(1, max / Math.max(width, height));
  return { width: Math.max(1, Math.round(width * scale)), height: Math.max(1, Math.round(height * scale)) };
}

function dataUrl(blob: Blob): Promise<string> {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result));
    reader.onerror = () => reject(reader.error ?? new Error("could not read the file"));
    reader.readAsDataURL(blob);
  });
}

/** The file as it is sent: a photo downscaled to JPEG (≤ 2048 px, ≤ ~1.5 MB), a text file as it is. */
export async function prepare(file: File): Promise<Attachment> {
  const why = refusal(file);
  if (why) throw new Error(why);
  if (!file.type.startsWith("image/")) {
    const mime = file.type || "text/plain";
    return { filename: file.name, mime, url: await dataUrl(new Blob([await file.arrayBuffer()], { type: mime })), size: file.size };
  }
  let bitmap: ImageBitmap;
  try {
    bitmap = await createImageBitmap(file);
  } catch {
    throw new Error(`${file.name}: not an image this browser can read`);
  }
  const size = fitted(bitmap.width, bitmap.height);
  const canvas = document.createElement("canvas");
  canvas.width = size.width;
  canvas.height = size.height;
  canvas.getContext("2d")?.drawImage(bitmap, 0, 0, size.width, size.height);
  bitmap.close();
  let blob: Blob | null = null;
  for (const quality of [0.85, 0.7, 0.55, 0.4]) {
    blob = await new Promise<Blob | null>((resolve) => canvas.toBlob(resolve, "image/jpeg", quality));
    if (blob && blob.size <= MAX_IMAGE_BYTES) break;
  }
  if (!blob || blob.size > MAX_IMAGE_BYTES) throw new Error(`${file.name}: still too large once made smaller`);
  const name = file.name.replace(/\.[^.]*$/, "") + ".jpg";
  return { filename: name, mime: "image/jpeg", url: await dataUrl(blob), size: blob.size };
}
