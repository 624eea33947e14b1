// Chat client. Messages are always rendered with textContent: whatever a
// peer sends is shown as text, never parsed as HTML.
"use strict";
(function () {
  var list = document.getElementById("messages");
  var status = document.getElementById("status");
  var form = document.getElementById("send");
  var input = document.getElementById("text");
  var scheme = location.protocol === "https:" ? "wss://" : "ws://";
  var ws = new WebSocket(scheme + location.host + "/ws/chat");
  ws.onopen = function () { status.textContent = "connected"; };
  ws.onclose = function (ev) { status.textContent = "closed " + ev.code; };
  ws.onmessage = function (ev) {
    var msg;
    try { msg = JSON.parse(ev.data); } catch (e) { return; }
    if (typeof msg.text !== "string") { return; }
    var li = document.createElement("li");
    li.textContent = msg.text;
    list.appendChild(li);
  };
  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    if (input.value.trim() === "" || ws.readyState !== WebSocket.OPEN) { return; }
    ws.send(JSON.stringify({ text: input.value }));
    input.value = "";
  });
})();
