//! Deterministic pseudo-text from a small word list: customer questions,
//! retrieved chunks, model answers.

use crate::rng::Rng;

const WORDS: &[&str] = &[
    "order",
    "delivery",
    "refund",
    "return",
    "warranty",
    "price",
    "discount",
    "stock",
    "shipping",
    "address",
    "payment",
    "card",
    "invoice",
    "size",
    "colour",
    "battery",
    "screen",
    "charger",
    "package",
    "tracking",
    "courier",
    "week",
    "today",
    "tomorrow",
    "please",
    "help",
    "thanks",
    "model",
    "version",
    "available",
    "store",
    "coupon",
    "member",
    "points",
    "exchange",
    "damaged",
    "missing",
    "late",
    "quick",
    "policy",
    "days",
    "receipt",
    "account",
    "product",
    "item",
    "quality",
    "support",
    "customer",
    "the",
    "a",
    "my",
    "is",
    "was",
    "and",
    "or",
    "when",
    "can",
    "will",
    "not",
    "with",
    "for",
    "to",
    "of",
    "in",
    "on",
    "it",
    "this",
    "that",
    "you",
    "we",
    "have",
    "need",
];

/// `n` words joined by spaces, capitalised, sentences of 8–16 words.
pub(crate) fn words(rng: &mut Rng, n: usize) -> String {
    let mut out = String::with_capacity(n * 7);
    let mut sentence = 0usize;
    let mut limit = rng.range(8, 16) as usize;
    for i in 0..n {
        let word = *rng.pick(WORDS);
        if sentence == 0 {
            if i > 0 {
                out.push(' ');
            }
            let mut chars = word.chars();
            if let Some(first) = chars.next() {
                out.extend(first.to_uppercase());
                out.push_str(chars.as_str());
            }
        } else {
            out.push(' ');
            out.push_str(word);
        }
        sentence += 1;
        if sentence >= limit || i + 1 == n {
            out.push('.');
            sentence = 0;
            limit = rng.range(8, 16) as usize;
        }
    }
    out
}

/// Text of roughly `bytes` bytes (words of ~6 bytes on average).
pub(crate) fn about_bytes(rng: &mut Rng, bytes: usize) -> String {
    words(rng, (bytes / 6).max(1))
}
