// Runs once per gr.HTML that holds our buttons (the conversation and the sources list).
// A click on a button with data-act becomes one `select` event for ui/handlers.py, with
// index [turn, act, data-mark] and value data-n; a suggested question is typed in and asked.
let pinned = true; // follow a streaming answer unless the reader scrolled up
window.addEventListener("scroll", () => {
  pinned = window.innerHeight + window.scrollY >= document.documentElement.scrollHeight - 96;
});
element.addEventListener("click", (event) => {
  const button = event.target.closest("button[data-act]");
  if (!button || !element.contains(button)) return;
  const act = button.dataset.act;
  if (act === "ask") {
    const box = document.querySelector("#question textarea");
    box.value = button.dataset.q;
    box.dispatchEvent(new Event("input", { bubbles: true }));
    setTimeout(() => document.querySelector("#ask")?.click(), 50);
    return;
  }
  if (act === "rate") {
    for (const other of button.parentElement.querySelectorAll(".rate")) {
      other.setAttribute("aria-pressed", String(other === button));
    }
  }
  const mark = button.dataset.mark === undefined ? null : Number(button.dataset.mark); // a chip's sentence
  trigger("select", { index: [Number(button.dataset.turn), act, mark], value: button.dataset.n ?? null });
});
// Escape hides an open popover, which covers the lines below its chip (WCAG 1.4.13: content on
// hover or focus can be dismissed), until the pointer or the focus reaches a chip again.
document.addEventListener("keydown", (event) => {
  if (event.key === "Escape") element.classList.add("quiet");
});
element.addEventListener("focusin", () => element.classList.remove("quiet"));
element.addEventListener("pointerover", (event) => {
  const chip = event.target.closest("button.cite");
  if (chip && !chip.contains(event.relatedTarget)) element.classList.remove("quiet");
});
watch("value", () => {
  if (pinned && element.querySelector(".turn")) document.querySelector("#composer")?.scrollIntoView({ block: "end" });
});
