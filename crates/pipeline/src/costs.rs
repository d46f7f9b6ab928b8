//! One currency for every cost (`[costs]`, issue 20 item 5).
//!
//! Dify prices each model in the currency its provider is configured with
//! (`USD`, or `RMB` for many Chinese providers), so one workspace's spans
//! mix currencies, and a sum of `cost` across them means nothing. The
//! pipeline converts at ingest, with the rates of `loupe.toml`: a span whose
//! currency has a rate is stored in the report currency, its original
//! amount and currency kept in the attributes [`ORIGINAL_COST`] and
//! [`ORIGINAL_CURRENCY`]. Everything downstream (the query language, the
//! rollups, `/metrics`, the analytics, the budgets) then sums one currency.
//!
//! Converting at ingest freezes the rate of the day the span was written,
//! which is what an account of spending wants. A currency without a rate is
//! stored as reported (case and the `RMB` alias normalised), so `by
//! currency` shows what is left unconverted; budgets count only their own
//! currency and list the rest (`loupe_analytics::budgets`). A span without
//! a currency is taken to be in the report currency.

use std::collections::{BTreeMap, HashMap};

use loupe_model::Span;
use loupe_model::currency::{is_code, normalise};
use serde::{Deserialize, Serialize};

/// Attribute holding a converted span's amount as its source reported it.
pub const ORIGINAL_COST: &str = "loupe.cost_original";
/// Attribute holding a converted span's currency as its source reported it.
pub const ORIGINAL_CURRENCY: &str = "loupe.currency_original";

/// Most rates a config may list.
const MAX_RATES: usize = 200;

/// `[costs]` in `loupe.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CostConfig {
    /// The currency costs are stored and reported in (ISO 4217, default
    /// `USD`).
    pub currency: String,
    /// Per source currency, what one unit is worth in `currency`
    /// (`CNY = 0.138`). `RMB` is read as `CNY`.
    pub rates: BTreeMap<String, f64>,
}

impl Default for CostConfig {
    fn default() -> Self {
        Self {
            currency: "USD".into(),
            rates: BTreeMap::new(),
        }
    }
}

/// The checked `[costs]`, applied to every written span.
#[derive(Debug, Clone)]
pub struct Converter {
    currency: String,
    rates: HashMap<String, f64>,
}

impl Default for Converter {
    fn default() -> Self {
        Self {
            currency: "USD".into(),
            rates: HashMap::new(),
        }
    }
}

impl Converter {
    /// Checks the config.
    ///
    /// # Errors
    /// A code that is not three letters, a rate that is not a positive
    /// number, a rate for the report currency itself, or too many rates;
    /// the message names the entry.
    pub fn new(config: &CostConfig) -> Result<Self, String> {
        let currency = normalise(&config.currency);
        if !is_code(&currency) {
            return Err(format!(
                "[costs] currency {:?}: use a three-letter ISO 4217 code such as \"USD\" or \"CNY\"",
                config.currency
            ));
        }
        if config.rates.len() > MAX_RATES {
            return Err(format!("[costs] rates: at most {MAX_RATES} currencies"));
        }
        let mut rates = HashMap::with_capacity(config.rates.len());
        for (code, &rate) in &config.rates {
            let norm = normalise(code);
            if !is_code(&norm) {
                return Err(format!(
                    "[costs] rates: {code:?} is not a three-letter ISO 4217 code"
                ));
            }
            if !(rate.is_finite() && rate > 0.0) {
                return Err(format!(
                    "[costs] rates.{code}: {rate} is not a positive number (one {norm} in {currency})"
                ));
            }
            if norm == currency {
                return Err(format!(
                    "[costs] rates.{code}: {norm} is the report currency itself; remove the rate"
                ));
            }
            if rates.insert(norm.clone(), rate).is_some() {
                return Err(format!("[costs] rates: {norm} is listed twice"));
            }
        }
        Ok(Self { currency, rates })
    }

    /// The report currency.
    pub fn currency(&self) -> &str {
        &self.currency
    }

    /// Stores `span`'s cost in the report currency when its currency has a
    /// rate (keeping the original in the attributes), else normalises the
    /// currency's spelling. A span without a cost is left alone.
    pub fn apply(&self, span: &mut Span) {
        let (Some(cost), Some(code)) = (span.cost, span.currency.as_deref()) else {
            return;
        };
        let code = normalise(code);
        if code.is_empty() {
            span.currency = None;
            return;
        }
        match self.rates.get(&code) {
            Some(rate) if cost.is_finite() => {
                span.attributes
                    .insert(ORIGINAL_COST.to_owned(), cost.to_string());
                span.attributes.insert(ORIGINAL_CURRENCY.to_owned(), code);
                span.cost = Some(cost * rate);
                span.currency = Some(self.currency.clone());
            }
            _ => span.currency = Some(code),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn converter(rates: &[(&str, f64)]) -> Converter {
        Converter::new(&CostConfig {
            currency: "usd".into(),
            rates: rates.iter().map(|(c, r)| ((*c).to_owned(), *r)).collect(),
        })
        .expect("valid config")
    }

    fn span(cost: Option<f64>, currency: Option<&str>) -> Span {
        let mut s = Span::new("p", "s1");
        s.cost = cost;
        s.currency = currency.map(str::to_owned);
        s
    }

    #[test]
    fn a_currency_with_a_rate_is_converted_and_the_original_kept() {
        let c = converter(&[("CNY", 0.14)]);
        // Dify says RMB.
        let mut s = span(Some(2.0), Some("RMB"));
        c.apply(&mut s);
        assert_eq!(s.currency.as_deref(), Some("USD"));
        assert!((s.cost.expect("a cost") - 0.28).abs() < 1e-12);
        assert_eq!(s.attributes[ORIGINAL_COST], "2");
        assert_eq!(s.attributes[ORIGINAL_CURRENCY], "CNY");
        // Written again (retag, a later update): already in USD, unchanged.
        c.apply(&mut s);
        assert!((s.cost.expect("a cost") - 0.28).abs() < 1e-12);
    }

    #[test]
    fn without_a_rate_or_a_cost_only_the_spelling_changes() {
        let c = converter(&[]);
        let mut s = span(Some(2.0), Some(" rmb"));
        c.apply(&mut s);
        assert_eq!((s.cost, s.currency.as_deref()), (Some(2.0), Some("CNY")));
        assert!(!s.attributes.contains_key(ORIGINAL_COST));
        let mut s = span(None, Some("rmb"));
        c.apply(&mut s);
        assert_eq!(s.currency.as_deref(), Some("rmb"));
        let mut s = span(Some(1.0), None);
        c.apply(&mut s);
        assert_eq!((s.cost, s.currency.as_deref()), (Some(1.0), None));
    }

    #[test]
    fn bad_configs_name_the_entry() {
        let bad = |currency: &str, rates: &[(&str, f64)]| {
            Converter::new(&CostConfig {
                currency: currency.into(),
                rates: rates.iter().map(|(c, r)| ((*c).to_owned(), *r)).collect(),
            })
            .expect_err("refused")
        };
        assert!(bad("dollars", &[]).contains("\"dollars\""));
        assert!(bad("USD", &[("CNY", 0.0)]).contains("rates.CNY"));
        assert!(bad("USD", &[("CNY", f64::NAN)]).contains("rates.CNY"));
        assert!(bad("USD", &[("usd", 1.0)]).contains("report currency"));
        assert!(bad("USD", &[("RMB", 0.1), ("CNY", 0.1)]).contains("twice"));
        assert!(bad("USD", &[("YUAN", 0.1)]).contains("\"YUAN\""));
    }
}
