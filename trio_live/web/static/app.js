// The trio-live page: talks protocol version 2 (docs/protocol.md) with the
// server that served it: it reports the end of each answer's playback.
// Plain JavaScript, no build step.
"use strict";

(() => {
  const params = new URLSearchParams(location.search);
  const $ = (id) => document.getElementById(id);
  const conversation = $("conversation");

  let ws = null;
  let audio = null;            // one AudioContext: microphone and playback
  let micStream = null;
  let micNode = null;
  let serverState = "listening";
  let active = false;          // idle until the microphone is on or text is typed
  let userLine = null;         // the user's line being transcribed
  let askedAt = null;          // when the user's last turn ended (performance.now)
  let pendingAudio = null;     // the header of the binary message to come
  let nextStart = 0;           // where the next chunk of speech is scheduled
  let retry = 500;
  const PROTOCOL = 2;          // the version this page speaks
  const turns = new Map();     // turn -> {line, text, latency, askedAt, heard, complete, reported, ...}
  const playing = new Set();   // scheduled chunks: {turn, from, chars, start, end, source, stopped}
  const CLOSES = {
    1000: "closed",
    1001: "the server shut down",
    1006: "connection lost",
    1008: "over the input budget",
    1009: "a message was too big",
    1011: "the pipeline failed",
    1013: "too many messages waiting",
    4000: "idle for too long",
  };

  // -- the page -----------------------------------------------------------

  function line(who, cls) {
    const el = document.createElement("div");
    el.className = `turn ${cls}`;
    const name = document.createElement("span");
    name.className = "who";
    name.textContent = who;
    const text = document.createElement("span");
    text.className = "text";
    const latency = document.createElement("span");
    latency.className = "latency";
    el.append(name, text, latency);
    $("hint").hidden = true;
    conversation.append(el);
    conversation.scrollTop = conversation.scrollHeight;
    return { el, text, latency };
  }

  function showState() {
    const state = !active ? "idle" : playing.size > 0 ? "speaking" : serverState;
    const el = $("state");
    el.textContent = state;
    el.className = `state ${state}`;
  }

  function showError(message) {
    const el = $("errors");
    el.textContent = message;
  }

  function turnOf(n) {
    let turn = turns.get(n);
    if (!turn) {
      const view = line("model", "model");
      const heardEl = document.createElement("span");
      const restEl = document.createElement("span");
      restEl.className = "unheard";
      view.text.append(heardEl, restEl);
      turn = {
        ...view, heardEl, restEl, full: "", askedAt, heard: 0, sent: 0, complete: false,
        reported: -1, firstAt: null, allHeard: false, cut: false, cutAt: 0,
      };
      askedAt = null;
      turns.set(n, turn);
    }
    return turn;
  }

  // The answer as heard: what played so far, the rest dimmed (cut at an interruption).
  function heardNow(n, turn) {
    if (turn.allHeard || !$("speak").checked) return turn.full.length;
    let chars = turn.heard;
    const now = audio ? audio.currentTime : 0;
    for (const chunk of playing) {
      if (chunk.turn !== n || chunk.chars === null || now < chunk.start) continue;
      const part = Math.min(1, (now - chunk.start) / Math.max(chunk.end - chunk.start, 1e-3));
      chars = Math.max(chars, Math.floor(chunk.from + (chunk.chars - chunk.from) * part));
    }
    return Math.min(chars, turn.full.length);
  }

  function render(n) {
    const turn = turns.get(n);
    if (!turn) return;
    const heard = turn.cut ? turn.cutAt : heardNow(n, turn);
    turn.heardEl.textContent = turn.full.slice(0, heard);
    turn.restEl.textContent = turn.cut ? "" : turn.full.slice(heard);
  }

  function renderPlaying() {
    const seen = new Set();
    for (const chunk of playing) seen.add(chunk.turn);
    for (const n of seen) render(n);
  }

  function firstOutput(turn) {
    if (turn.firstAt !== null) return;
    turn.firstAt = performance.now();
    if (turn.askedAt !== null) {
      turn.latency.textContent = `reply in ${Math.round(turn.firstAt - turn.askedAt)} ms`;
    }
  }

  // -- the socket ---------------------------------------------------------

  function send(message) {
    if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(message));
  }

  function connect() {
    const url = new URL("ws", location.href);
    url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
    url.search = "";
    if (params.get("token")) url.searchParams.set("token", params.get("token"));
    ws = new WebSocket(url, ["trio-live.v1"]);
    ws.binaryType = "arraybuffer";
    ws.onopen = () => {
      retry = 500;
      // Speech is always built; "options" switches it (and the echo guard, and
      // the interruption rules) at any time, in the same session.
      send({ type: "config", version: PROTOCOL, tts: true });
      sendOptions();
    };
    ws.onmessage = (message) => {
      if (typeof message.data === "string") handle(JSON.parse(message.data));
      else if (pendingAudio) {
        schedule(pendingAudio, message.data);
        pendingAudio = null;
      }
    };
    ws.onclose = (close) => {
      const why = CLOSES[close.code] || close.reason || "closed";
      $("connection").textContent = `disconnected (${close.code}: ${why}), retrying…`;
      stopPlayback();
      setTimeout(connect, retry);
      retry = Math.min(retry * 2, 10000);
    };
  }

  function handle(event) {
    switch (event.type) {
      case "ready":
        // An older server speaks only version 1 (and says so with an error).
        $("connection").textContent =
          `connected · session ${event.session} · protocol v${Math.min(event.version, PROTOCOL)}`;
        break;
      case "state":
        serverState = event.state;
        showState();
        break;
      case "transcript":
        if (!userLine) userLine = line("you", "user");
        userLine.text.textContent = event.text;
        userLine.text.classList.toggle("partial", !event.final);
        if (event.final) {
          userLine = null;
          askedAt = performance.now();
        }
        break;
      case "text": {
        const turn = turnOf(event.turn);
        turn.full += event.text;
        render(event.turn);
        firstOutput(turn);
        break;
      }
      case "audio":
        pendingAudio = event;
        break;
      case "interrupted": {
        const turn = turnOf(event.turn);
        turn.el.classList.add("interrupted");
        turn.cutAt = heardNow(event.turn, turn);  // shown; reports count whole chunks
        stopPlayback(event.turn);
        turn.cut = true;
        render(event.turn);
        break;
      }
      case "answer_complete":  // no more text or audio: report once it has played
      case "turn_complete": {  // the turn is over (a server without answer_complete)
        const turn = turnOf(event.turn);
        turn.complete = true;
        finishIfDone(event.turn);
        break;
      }
      case "tool": {  // a tool call of the answer started or ended
        const turn = turnOf(event.turn);
        if (!turn.toolEl) {
          turn.toolEl = document.createElement("span");
          turn.toolEl.className = "tool";
          turn.text.after(turn.toolEl);
        }
        turn.toolEl.textContent = event.event === "started"
          ? ` · looking that up (${event.tool})…`
          : ` · ${event.tool}: ${event.outcome} in ${Math.round((event.seconds || 0) * 1000)} ms`;
        break;
      }
      case "metrics": {
        const turn = turns.get(event.turn);
        if (turn && event.time_to_first_output !== null) {
          const server = Math.round(event.time_to_first_output * 1000);
          turn.latency.textContent += ` (model ${server} ms)`;
        }
        break;
      }
      case "error":
        showError(`${event.code}: ${event.message}`);
        break;
      default:
        break;  // newer servers may send more
    }
  }

  // -- speech output and playback reports ---------------------------------

  function ensureAudio() {
    if (!audio) audio = new AudioContext();
    if (audio.state === "suspended") audio.resume();
    return audio;
  }

  function schedule(header, data) {
    const turn = turnOf(header.turn);
    firstOutput(turn);
    if (turn.el.classList.contains("interrupted")) return;
    const ctx = ensureAudio();
    const pcm = new Int16Array(data);
    const buffer = ctx.createBuffer(1, pcm.length, header.sample_rate);
    const channel = buffer.getChannelData(0);
    for (let i = 0; i < pcm.length; i++) channel[i] = pcm[i] / 32768;
    const source = ctx.createBufferSource();
    source.buffer = buffer;
    source.connect(ctx.destination);
    const start = Math.max(ctx.currentTime + 0.03, nextStart);
    source.start(start);
    nextStart = start + buffer.duration;
    const from = turn.sent;
    if (header.spoken_chars !== null) turn.sent = header.spoken_chars;
    const chunk = {
      turn: header.turn, from, chars: header.spoken_chars, start, end: nextStart, source, stopped: false,
    };
    playing.add(chunk);
    source.onended = () => {
      playing.delete(chunk);
      if (!chunk.stopped && chunk.chars !== null) turn.heard = Math.max(turn.heard, chunk.chars);
      render(chunk.turn);
      finishIfDone(chunk.turn);
      showState();
    };
    showState();
  }

  function report(n, finished) {
    const turn = turns.get(n);
    if (!turn || (!finished && turn.reported === turn.heard)) return;
    turn.reported = turn.heard;
    send({ type: "playback", turn: n, chars: turn.heard, finished });
  }

  function finishIfDone(n) {
    const turn = turns.get(n);
    if (!turn || !turn.complete || turn.finished) return;
    for (const chunk of playing) if (chunk.turn === n) return;
    turn.finished = true;
    const whole = !turn.el.classList.contains("interrupted");
    if (whole) turn.allHeard = true;
    render(n);
    report(n, whole);
  }

  function stopPlayback(n) {
    for (const chunk of [...playing]) {
      if (n !== undefined && chunk.turn !== n) continue;
      chunk.stopped = true;
      playing.delete(chunk);
      try { chunk.source.stop(); } catch (e) { /* not started yet */ }
      report(chunk.turn, false);
    }
    nextStart = 0;
    showState();
  }

  setInterval(renderPlaying, 100);

  setInterval(() => {
    const reported = new Set();
    for (const chunk of playing) {
      if (!reported.has(chunk.turn)) report(chunk.turn, false);
      reported.add(chunk.turn);
    }
  }, 250);

  // -- the microphone -----------------------------------------------------

  async function startMic() {
    const ctx = ensureAudio();
    micStream = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true, autoGainControl: true },
    });
    await ctx.audioWorklet.addModule("worklet.js");
    micNode = new AudioWorkletNode(ctx, "pcm16-capture");
    micNode.port.onmessage = (message) => {
      // A socket that cannot keep up loses old audio here, not control messages.
      if (ws && ws.readyState === WebSocket.OPEN && ws.bufferedAmount < 64000) ws.send(message.data);
    };
    const mute = ctx.createGain();
    mute.gain.value = 0;
    ctx.createMediaStreamSource(micStream).connect(micNode);
    micNode.connect(mute).connect(ctx.destination);
    $("mic").textContent = "Stop microphone";
    active = true;
    showState();
  }

  function stopMic() {
    if (micStream) micStream.getTracks().forEach((track) => track.stop());
    if (micNode) micNode.disconnect();
    micStream = micNode = null;
    $("mic").textContent = "Start microphone";
  }

  $("mic").onclick = () => {
    if (micStream) stopMic();
    else startMic().catch((error) => showError(`microphone: ${error.message}`));
  };
  $("interrupt").onclick = () => {
    stopPlayback();
    send({ type: "interrupt" });
  };
  // The switches, as options of the session (bounded by the server: docs/protocol.md).
  function sendOptions() {
    const noises = $("noises").checked;
    send({
      type: "options",
      tts: $("speak").checked,
      echo_guard: !$("headset").checked,
      // Speech over an answer must last 0.3 s and yield a word within 1.5 s.
      min_interruption_duration: noises ? 0.3 : 0,
      false_interruption_timeout: noises ? 1.5 : null,
      // A word that is no "mm-hm" or "yeah" is needed to interrupt.
      min_interruption_words: $("backchannels").checked ? 1 : 0,
    });
  }
  $("speak").onchange = () => {
    if (!$("speak").checked) stopPlayback();
    sendOptions();
    for (const n of turns.keys()) render(n);
  };
  $("headset").onchange = sendOptions;
  $("noises").onchange = sendOptions;
  $("backchannels").onchange = sendOptions;
  $("typed").onsubmit = (submit) => {
    submit.preventDefault();
    const text = $("text").value.trim();
    if (!text) return;
    ensureAudio();
    active = true;
    showState();
    line("you", "user").text.textContent = text;
    askedAt = performance.now();
    send({ type: "text", text });
    $("text").value = "";
  };

  showState();
  connect();
  if (params.get("autostart")) startMic().catch((error) => showError(`microphone: ${error.message}`));
})();
