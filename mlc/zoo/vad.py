"""A voice-activity detector in the style of Silero VAD (v4), written the way
``torch.onnx.export`` emits it: an STFT front end on raw audio (``Pad`` with
``mode="reflect"``, then a strided ``Conv`` whose filters are the Hann-windowed Fourier
basis, real and imaginary halves by ``Slice``, magnitude by Pow / Add / Sqrt), a
conv encoder (Conv1d + ReLU, two with stride 2), a stack of LSTM layers over the short
sequence of frames with the recurrent state passed in and out (initial states ``Slice``d
per layer, final states ``Concat``ed), and a decoder of ReLU, 1x1 Conv1d and Sigmoid
giving a speech probability per frame."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx

from ._builder import GraphBuilder, Moments


def stft_basis(filter_length: int) -> np.ndarray:
    """Silero's ``forward_basis_buffer``: the real then imaginary rows of the DFT
    (``filter_length / 2 + 1`` frequencies each) times a periodic Hann window, as
    Conv1d weights [2 * cutoff, 1, filter_length]."""
    cutoff = filter_length // 2 + 1
    fourier = np.fft.fft(np.eye(filter_length))[:cutoff]
    basis = np.vstack([fourier.real, fourier.imag])
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(filter_length) / filter_length)
    return (basis * window)[:, None, :].astype(np.float32)


def vad(samples: int = 1536, filter_length: int = 256, hop: int = 64,
        channels: Sequence[int] = (128, 64, 64, 128), hidden: int = 64, lstm_layers: int = 2,
        batch: int = 1, seed: int = 0) -> onnx.ModelProto:
    """Silero-style VAD (default: a 96 ms chunk at 16 kHz, 256-point STFT with hop 64,
    two LSTM layers of 64 units).

    Inputs: ``input`` float32 [batch, 1, samples] (raw audio in [-1, 1]); ``h``, ``c``
    float32 [lstm_layers, batch, hidden] (the LSTM state carried between chunks).
    Outputs: ``probs`` float32 [batch, frames] (speech probability per frame; frames =
    (samples + filter_length - hop - filter_length) / hop + 1, halved twice by the encoder,
    rounding up); ``hn``, ``cn`` float32 [lstm_layers, batch, hidden].
    """
    b = GraphBuilder("vad", seed=seed)
    x = b.input("input", (batch, 1, samples))
    h0 = b.input("h", (lstm_layers, batch, hidden))
    c0 = b.input("c", (lstm_layers, batch, hidden))
    pad = (filter_length - hop) // 2
    cutoff = filter_length // 2 + 1
    with b.scope("feature_extractor"):
        x = b.pad(x, [0, 0, pad, 0, 0, pad], mode="reflect")
        basis = b.param("forward_basis_buffer", stft_basis(filter_length))
        frames = (b.shape(x)[2] - filter_length) // hop + 1
        spec = b.node("Conv", [x, basis], (batch, 2 * cutoff, frames), dilations=[1], group=1,
                      kernel_shape=[filter_length], pads=[0, 0], strides=[hop])
        real = b.slice(spec, [0], [cutoff], [1])
        imag = b.slice(spec, [cutoff], [2 * cutoff], [1])
        # |X| of windowed noise of amplitude ~0.1: E|X|^2 ~ 0.01 * sum(window^2)
        magnitude = Moments(0.0, 0.01 * float(np.square(np.hanning(filter_length)).sum()))
        x = b.unary("Sqrt", b.add(b.pow(real, 2.0), b.pow(imag, 2.0)), moments=magnitude)
    with b.scope("encoder"):
        for i, (c, s) in enumerate(zip(channels, (1, 2, 2, 1))):
            with b.scope(str(i)):
                gain = 2.0 / b.moments(x).mean_square if i == 0 else 2.0
                x = b.relu(b.conv(x, c, 3, s, 1, bias=True, gain=gain, name="reparam_conv"))
    x = b.transpose(x, (2, 0, 1))                                  # [T, b, C]
    hs, cs = [], []
    with b.scope("decoder"):
        for layer in range(lstm_layers):
            hi = b.slice(h0, [layer], [layer + 1], [0])
            ci = b.slice(c0, [layer], [layer + 1], [0])
            y, yh, yc = b.lstm(x, hidden, initial_h=hi, initial_c=ci, name=f"rnn.l{layer}")
            x = b.squeeze(y, [1])
            hs.append(yh)
            cs.append(yc)
        y = b.transpose(b.relu(x), (1, 2, 0))                      # [b, H, T]
        y = b.conv(y, 1, 1, bias=True, gain=4.0 / b.moments(y).mean_square, name="decoder.2")
        probs = b.squeeze(b.sigmoid(y), [1])
    b.output(probs, "probs")
    b.output(b.concat(hs, axis=0), "hn")
    b.output(b.concat(cs, axis=0), "cn")
    return b.build(doc=vad.__doc__ or "")


def vad_inputs(rng: np.random.Generator, *, batch: int, samples: int, hidden: int, lstm_layers: int,
               **_) -> dict[str, np.ndarray]:
    """A chunk of noisy audio (a 220 Hz tone plus noise at 16 kHz, amplitude ~0.1) and a
    small nonzero LSTM state, as in the middle of a stream."""
    t = np.arange(samples) / 16000.0
    audio = 0.05 * np.sin(2 * np.pi * 220.0 * t) + 0.1 * rng.standard_normal((batch, 1, samples))
    state = lambda: (0.1 * rng.standard_normal((lstm_layers, batch, hidden))).astype(np.float32)
    return {"input": audio.astype(np.float32), "h": state(), "c": state()}
