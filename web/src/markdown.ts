// Model output is untrusted: raw HTML in it is shown as text, and what marked makes is sanitized again.
import DOMPurify from "dompurify";
import { Marked } from "marked";

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);
}

const md = new Marked({
  gfm: true,
  breaks: false,
  async: false,
  renderer: {
    // block and inline HTML both render as the text they are
    html({ text }) {
      return escapeHtml(text);
    },
  },
});

DOMPurify.addHook("afterSanitizeAttributes", (node) => {
  if (node.tagName === "A") {
    node.setAttribute("target", "_blank");
    node.setAttribute("rel", "noopener noreferrer");
  }
});

const cache = new Map<string, string>();

export function renderMarkdown(text: string): string {
  const hit = cache.get(text);
  if (hit !== undefined) return hit;
  const html = DOMPurify.sanitize(md.parse(text) as string, {
    FORBID_TAGS: ["style", "form", "input", "button", "textarea", "select", "img", "video", "audio", "iframe"],
    FORBID_ATTR: ["style"],
  });
  if (cache.size > 500) cache.clear();
  cache.set(text, html);
  return html;
}
