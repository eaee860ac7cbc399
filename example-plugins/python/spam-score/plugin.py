"""spam-score: a spam score from weighted word and regex rules on the subject
and body. Adds `X-Spam-Score`, adds the scores other plugins left in
transaction notes (e.g. the JavaScript header-rules plugin's `rule-score`),
leaves its own total in the note `spam-score`, and rejects with
550 5.7.1 when the total reaches the threshold.

The rules see the decoded text (base64, quoted-printable and charsets
undone) of the message's text/plain and text/html parts, from the gateway's
MIME view (`wasmtp.mime`, parsed once by the host for the whole chain);
attachments are never read. A message the view cannot describe is scored
on its raw body."""

import re

import wasmtp


def _number(value, what):
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a number, got {value!r}")


def _fmt(x):
    return f"{x:.2f}".rstrip("0").rstrip(".") if x != int(x) else str(int(x))


class SpamScore(wasmtp.Plugin):
    def init(self, config):
        self.threshold = _number(config.get("threshold", 5), "threshold")
        self.reject = bool(config.get("reject", True))
        self.header = str(config.get("header", "X-Spam-Score"))
        self.note = str(config.get("note", "spam-score"))
        self.max_body = int(_number(config.get("max_body_bytes", 262144), "max_body_bytes"))
        words = config.get("words", {})
        if not isinstance(words, dict):
            raise ValueError("words must be a table of word = weight")
        # Whole-word, case-insensitive.
        self.words = [
            (w, re.compile(r"\b" + re.escape(w) + r"\b", re.IGNORECASE), _number(s, f"words.{w}"))
            for w, s in words.items()
        ]
        self.patterns = []
        for i, rule in enumerate(config.get("patterns", [])):
            if not isinstance(rule, dict) or "pattern" not in rule:
                raise ValueError(f"patterns[{i}] must be a table with a pattern")
            try:
                rx = re.compile(rule["pattern"], re.IGNORECASE | re.MULTILINE)
            except re.error as e:
                raise ValueError(f"patterns[{i}]: bad regex: {e}")
            name = str(rule.get("name", f"pattern{i + 1}"))
            self.patterns.append((name, rx, _number(rule.get("score", 1), f"patterns[{i}].score")))
        imported = config.get("import_notes", ["rule-score"])
        if not isinstance(imported, list):
            raise ValueError("import_notes must be a list of note names")
        self.import_notes = [str(n) for n in imported]

    def _body_text(self, txn):
        """The decoded text parts, at most `max_body_bytes` octets in all."""
        try:
            texts = []
            budget = self.max_body
            for part in wasmtp.mime.body_texts(txn):
                if budget <= 0:
                    break
                text = wasmtp.mime.text(txn, part, budget)
                texts.append(text)
                budget -= len(text.encode("utf-8"))
            return "\n".join(texts)
        except wasmtp.mime.MimeError as e:
            wasmtp.log.debug("no MIME view, scoring the raw body", case=e.case)
            return wasmtp.body_text(txn, self.max_body)

    def data_post(self, conn, txn):
        subject = " ".join(txn.header("Subject"))
        text = subject + "\n" + self._body_text(txn)
        total = 0.0
        hits = []
        for word, rx, weight in self.words:
            n = len(rx.findall(text))
            if n:
                total += weight * n
                hits.append(f"{word}x{n}" if n > 1 else word)
        for name, rx, weight in self.patterns:
            if rx.search(text):
                total += weight
                hits.append(name)
        # Scores left by earlier plugins, whatever their language.
        for key in self.import_notes:
            value = txn.note(key)
            if value is None:
                continue
            try:
                imported = float(value.split()[0])
            except (ValueError, IndexError):
                wasmtp.log.warn("ignoring a non-numeric note", note=key, value=value)
                continue
            total += imported
            hits.append(f"{key}={_fmt(imported)}")
        total = round(total, 2)
        detail = f" ({', '.join(hits)})" if hits else ""
        txn.add_header(self.header, f"{_fmt(total)}/{_fmt(self.threshold)}{detail}")
        txn.set_note(self.note, _fmt(total))
        wasmtp.log.info("spam score", score=_fmt(total), threshold=_fmt(self.threshold))
        if self.reject and total >= self.threshold:
            return wasmtp.deny(550, "5.7.1", f"Message looks like spam (score {_fmt(total)})")
        return wasmtp.DECLINED


Hooks = wasmtp.export(SpamScore)
