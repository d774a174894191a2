// Runs once per gr.HTML that holds our buttons (the conversation and the sources list).
// A click on a button with data-act becomes one `select` event for ui/handlers.py, with
// index [turn, act] and value data-n; a suggested question is typed in and asked.
let pinned = true; // follow a streaming answer unless the reader scrolled up
element.addEventListener("scroll", (event) => {
  const box = event.target;
  pinned = box.scrollHeight - box.scrollTop - box.clientHeight < 48;
}, true);
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
  trigger("select", { index: [Number(button.dataset.turn), act], value: button.dataset.n ?? null });
});
watch("value", () => {
  const conv = element.querySelector(".conv");
  if (conv && pinned) conv.scrollTop = conv.scrollHeight;
});
