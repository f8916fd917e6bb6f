// Microphone capture: resample the context's rate to 16 kHz (linear
// interpolation), convert to 16-bit PCM and post 20 ms frames (640 bytes).
class Pcm16Capture extends AudioWorkletProcessor {
  constructor() {
    super();
    this.step = sampleRate / 16000;
    this.t = 0;          // position of the next output sample in this block
    this.last = 0;       // the previous block's last sample
    this.frame = new Int16Array(320);
    this.filled = 0;
  }

  push(value) {
    const v = Math.max(-1, Math.min(1, value));
    this.frame[this.filled++] = v < 0 ? v * 0x8000 : v * 0x7fff;
    if (this.filled === this.frame.length) {
      this.port.postMessage(this.frame.buffer, [this.frame.buffer]);
      this.frame = new Int16Array(320);
      this.filled = 0;
    }
  }

  process(inputs) {
    const input = inputs[0] && inputs[0][0];
    if (!input) return true;
    let t = this.t;
    while (t < input.length - 1) {
      const i = Math.floor(t);
      const a = i < 0 ? this.last : input[i];
      const b = input[i + 1];
      this.push(a + (b - a) * (t - i));
      t += this.step;
    }
    this.t = t - input.length;
    this.last = input[input.length - 1];
    return true;
  }
}

registerProcessor("pcm16-capture", Pcm16Capture);
