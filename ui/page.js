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
// A popover opens under its chip's line, or over it when there is no room below inside the
// conversation and the window: under the last answer it covered the question box. With no
// room either way it takes the roomier side and scrolls, still inside the conversation.
function place(chip) {
  const pop = chip.querySelector(".pop");
  const answer = chip.closest(".a"); // what the popover is positioned in (page.css)
  if (!pop || !answer) return;
  pop.style.display = "block"; // measured before it shows: hover may not have applied yet
  pop.style.visibility = "hidden";
  pop.style.maxHeight = "";
  const height = pop.offsetHeight;
  const line = chip.getBoundingClientRect();
  const chat = element.getBoundingClientRect();
  const below = Math.min(chat.bottom, window.innerHeight) - line.bottom;
  const above = line.top - Math.max(chat.top, 0);
  const under = height <= below || (height > above && below >= above);
  const inside = answer.getBoundingClientRect().top + answer.clientTop; // the answer's padding box
  if (under) {
    pop.style.top = `${line.bottom - inside - 1}px`; // 1 px over the chip: the pointer crosses no gap
    pop.style.bottom = "auto";
  } else {
    pop.style.top = "auto";
    pop.style.bottom = `${inside + answer.clientHeight - line.top - 1}px`;
  }
  if (height > Math.max(below, above)) pop.style.maxHeight = `${Math.max(below, above)}px`;
  pop.dataset.side = under ? "below" : "above";
  pop.style.display = pop.style.visibility = "";
}
element.addEventListener("focusin", (event) => {
  element.classList.remove("quiet");
  const chip = event.target.closest("button.cite");
  if (chip) place(chip);
});
element.addEventListener("pointerover", (event) => {
  const chip = event.target.closest("button.cite");
  if (chip && !chip.contains(event.relatedTarget)) {
    element.classList.remove("quiet");
    place(chip);
  }
});
watch("value", () => {
  if (pinned && element.querySelector(".turn")) document.querySelector("#composer")?.scrollIntoView({ block: "end" });
});
