"""New text as tokens arrive, never half a character: what a terminal can print token by token.

A byte-level BPE token can be part of a character (an accented letter, an emoji or a CJK character is
2-4 bytes, often split across tokens), and decoding it alone gives U+FFFD, the replacement character.
So each new token re-decodes all the new tokens so far and hands out only the text beyond what was
already handed out, holding it back while it ends in an incomplete character. Decoding everything
(not just the last token) also keeps what tokenizers decide from context, such as a sentencepiece
tokenizer dropping the space before the first word. The pieces add up to ``decode(ids)``.
"""

from __future__ import annotations

INCOMPLETE = "\ufffd"  # what decode gives for bytes that are not yet a whole character


class TextStream:
    """``push(token)`` -> the text that token completes (often "", while a character is unfinished)."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.ids: list[int] = []
        self.shown = ""

    def push(self, token: int) -> str:
        self.ids.append(int(token))
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        if text.endswith(INCOMPLETE):
            return ""
        return self._show(text)

    def finish(self) -> str:
        """What is still held back when the tokens end (an unfinished character at the very end)."""
        return self._show(self.tokenizer.decode(self.ids, skip_special_tokens=True))

    def _show(self, text: str) -> str:
        piece = text[len(self.shown):]  # what was printed stays printed, whatever later context decides
        self.shown = text
        return piece
