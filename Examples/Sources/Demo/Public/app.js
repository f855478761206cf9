// The demo page: notes over Server-Sent Events, the lobby over a WebSocket, uploads over fetch.
const notes = document.getElementById("notes");
const feed = new EventSource("/notes/events");
feed.addEventListener("note", (event) => {
  const note = JSON.parse(event.data);
  const item = document.createElement("li");
  item.textContent = `#${note.id} ${note.text}`;
  item.dataset.id = note.id;
  notes.appendChild(item);
});

document.getElementById("note-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const input = document.getElementById("note-text");
  await fetch("/notes", { method: "POST", headers: { "Content-Type": "application/json" },
                          body: JSON.stringify({ text: input.value }) });
  input.value = "";  // the note arrives through the feed
});

const chat = document.getElementById("chat");
const socket = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws/lobby`);
socket.addEventListener("message", (event) => {
  const item = document.createElement("li");
  item.textContent = event.data;
  chat.appendChild(item);
});
document.getElementById("chat-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const input = document.getElementById("chat-text");
  socket.send(input.value);
  input.value = "";
});

document.getElementById("file").addEventListener("change", async (event) => {
  const file = event.target.files[0];
  if (!file) return;
  const response = await fetch("/upload", { method: "POST", body: file });
  const result = await response.json();
  document.getElementById("upload-result").textContent = `${result.bytes} bytes, sha256 ${result.sha256}`;
});
