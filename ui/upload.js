// Runs once, for the upload box's watcher in the Documents tab (ui/app.py). Gradio refuses a
// file of a type or size it does not take in the browser, with a toast that goes away: the
// server never heard of it, so the status under the box kept the last upload's result and the
// refused file looked uploaded. Each file chosen or dropped is named to the server, which
// says in that status which ones it refuses and why (Handlers.picked in ui/handlers.py).
function picked(files) {
  if (files?.length) trigger("picked", { files: Array.from(files, (file) => ({ name: file.name, size: file.size })) });
}
// Capturing, on the document: before Gradio's own listeners, whichever input it made.
document.addEventListener("change", (event) => {
  if (event.target.closest?.("#upload") && event.target.type === "file") picked(event.target.files);
}, true);
document.addEventListener("drop", (event) => {
  if (event.target.closest?.("#upload")) picked(event.dataTransfer?.files);
}, true);
