// Small DOM helpers of the chat page.

export const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
export const el = (tag: string, attrs: Record<string, string>, ...children: Array<Node | string>) => {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  node.append(...children);
  return node;
};
/** Sets a text only when it differs: a live region announces every change. */
export const setText = (node: HTMLElement, text: string) => {
  if (node.textContent !== text) node.textContent = text;
};

/**
 * Sets `node` to `names` joined by ", ", then `tail`, only when its text
 * differs. Each name is set apart in its own direction (dir=auto): two names
 * in right-to-left scripts would otherwise run together and swap places.
 */
export const setNames = (node: HTMLElement, names: string[], tail: string) => {
  if (node.textContent === names.join(", ") + tail) return;
  node.replaceChildren(...names.flatMap((name, i) => [...(i === 0 ? [] : [", "]), el("span", { dir: "auto" }, name)]), tail);
};

/** Puts `items` into `list` in this order, moving only what is out of place, and takes out every other child. */
export function placeInOrder(list: HTMLElement, items: HTMLElement[]): void {
  let next = list.firstElementChild;
  for (const li of items) {
    if (li === next) next = li.nextElementSibling;
    else list.insertBefore(li, next);
  }
  while (next !== null) {
    const stale = next;
    next = next.nextElementSibling;
    stale.remove();
  }
}

/** A list scrolled to within this many pixels of its end counts as read to the end: it follows new lines. */
const NEAR_END_PX = 40;

export const isNearEnd = (list: HTMLElement) => list.scrollHeight - list.scrollTop - list.clientHeight <= NEAR_END_PX;
