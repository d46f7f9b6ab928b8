//! Currency codes as Loupe stores them.
//!
//! Dify writes the yuan as `RMB` and sources differ in case; stored spans
//! say the ISO 4217 code in upper case (`loupe_pipeline::costs`), and
//! readers that filter on a currency also accept what older data says.

/// A currency code as stored: trimmed, upper case, `RMB` → `CNY`.
pub fn normalise(code: &str) -> String {
    let up = code.trim().to_ascii_uppercase();
    if up == "RMB" { "CNY".into() } else { up }
}

/// Whether `code` (normalised) looks like an ISO 4217 code.
pub fn is_code(code: &str) -> bool {
    code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase())
}

/// Every spelling a stored currency may have for `code` (data written
/// before the pipeline normalised it may say `RMB`, or `usd`).
pub fn spellings(code: &str) -> Vec<String> {
    let code = normalise(code);
    let mut out = vec![code.clone(), code.to_ascii_lowercase()];
    if code == "CNY" {
        out.extend(["RMB".to_owned(), "rmb".to_owned()]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_normalised_and_older_spellings_listed() {
        assert_eq!(normalise(" rmb"), "CNY");
        assert_eq!(normalise("usd"), "USD");
        assert!(is_code("EUR") && !is_code("YUAN") && !is_code("eur"));
        assert_eq!(spellings("rmb"), ["CNY", "cny", "RMB", "rmb"]);
        assert_eq!(spellings("USD"), ["USD", "usd"]);
    }
}
