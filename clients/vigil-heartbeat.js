// Answers vigild's application-level heartbeat (app_ping_interval), so that vigild can tell a
// live page from one that is frozen, kept in the back/forward cache or stuck in JavaScript: the
// browser answers protocol pings for those, only the page's own code answers this.
// Call it right after `new WebSocket(...)`, before adding your own message listeners: the ping
// then never reaches them. No dependencies; the messages must match app_ping_message and
// app_pong_message.
function vigilHeartbeat(socket, ping = '{"type":"ping"}', pong = '{"type":"pong"}') {
  socket.addEventListener("message", (event) => {
    if (event.data !== ping) return;
    event.stopImmediatePropagation();
    if (socket.readyState === WebSocket.OPEN) socket.send(pong);
  });
  return socket;
}
