//! [`Money`]: an exact amount of US dollars in pico-USD.

use std::fmt;
use std::iter::Sum;
use std::ops::{Add, AddAssign};

use serde::{Deserialize, Serialize};

/// Pico-USD in one US dollar.
const PICOS_PER_USD: u128 = 1_000_000_000_000;
/// Decimal places of one pico-USD.
const DECIMALS: usize = 12;

/// An amount of money in pico-USD (1e-12 USD), as an exact integer.
///
/// All arithmetic saturates at `u128::MAX` picos (about 3.4e26 USD) instead of overflowing. It serializes as a
/// bare integer number of picos (`712500000000` for $0.7125), and reads back exactly, as a 128-bit integer
/// (sums pass `u64::MAX` picos at $18.4 million). serde's buffering wrappers have no 128-bit integers:
/// internally tagged (`#[serde(tag = "type")]`) and untagged enums and `#[serde(flatten)]` fields holding a
/// `Money`, or a record or totals holding one, fail to read back with "u128 is not supported". Wrap them in a
/// struct, or an externally or adjacently tagged enum (`#[serde(tag = "type", content = "data")]`), which do not
/// buffer.
///
/// [`Display`](fmt::Display) renders exactly, from the integer, never via `f64`: a `$`, the whole dollars, and
/// the fraction with trailing zeros trimmed but at least 2 decimals, up to all 12 (`$0.7125`, `$0.00`,
/// `$12.50`, `$0.0000000625`). An explicit precision rounds half up to that many decimals (`{:.2}` of
/// $0.125 is `$0.13`); width, fill and alignment are honoured (right-aligned by default).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Money(u128);

impl Money {
    /// No money.
    pub const ZERO: Money = Money(0);

    /// An amount of pico-USD.
    pub const fn from_picos(picos: u128) -> Self {
        Money(picos)
    }

    /// The amount in pico-USD.
    pub const fn picos(self) -> u128 {
        self.0
    }

    /// The amount in US dollars as a float, for display and export edges only (it loses precision above
    /// 2^53 picos of fraction arithmetic; never sum these).
    pub fn as_usd(self) -> f64 {
        let whole = self.0 / PICOS_PER_USD;
        let frac = self.0 % PICOS_PER_USD;
        whole as f64 + frac as f64 / PICOS_PER_USD as f64
    }

    /// The sum, saturating at the maximum amount.
    pub fn saturating_add(self, other: Money) -> Money {
        Money(self.0.saturating_add(other.0))
    }

    /// The difference, saturating at zero.
    pub fn saturating_sub(self, other: Money) -> Money {
        Money(self.0.saturating_sub(other.0))
    }

    /// True for zero.
    pub const fn is_zero(self) -> bool {
        self.0 == 0
    }

    /// The exact rendering described on [`Money`], without padding.
    fn render(self, precision: Option<usize>) -> String {
        match precision {
            None => {
                let whole = self.0 / PICOS_PER_USD;
                let frac = format!("{:012}", self.0 % PICOS_PER_USD);
                let trimmed = frac.trim_end_matches('0');
                let shown = if trimmed.len() >= 2 { trimmed } else { &frac[..2] };
                format!("${whole}.{shown}")
            }
            Some(p) => {
                let p = p.min(DECIMALS);
                let unit = 10u128.pow((DECIMALS - p) as u32);
                let mut rounded = self.0 / unit;
                if (self.0 % unit) * 2 >= unit {
                    rounded += 1;
                }
                let scale = 10u128.pow(p as u32);
                let whole = rounded / scale;
                if p == 0 { format!("${whole}") } else { format!("${whole}.{:0p$}", rounded % scale) }
            }
        }
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.render(f.precision());
        let len = text.chars().count();
        let Some(width) = f.width().filter(|w| *w > len) else {
            return f.write_str(&text);
        };
        let pad = width - len;
        let (before, after) = match f.align() {
            Some(fmt::Alignment::Left) => (0, pad),
            Some(fmt::Alignment::Center) => (pad / 2, pad - pad / 2),
            Some(fmt::Alignment::Right) | None => (pad, 0),
        };
        let fill = f.fill();
        for _ in 0..before {
            f.write_fmt(format_args!("{fill}"))?;
        }
        f.write_str(&text)?;
        for _ in 0..after {
            f.write_fmt(format_args!("{fill}"))?;
        }
        Ok(())
    }
}

impl Add for Money {
    type Output = Money;

    /// Saturating addition.
    fn add(self, rhs: Money) -> Money {
        self.saturating_add(rhs)
    }
}

impl AddAssign for Money {
    /// Saturating addition.
    fn add_assign(&mut self, rhs: Money) {
        *self = self.saturating_add(rhs);
    }
}

impl Sum for Money {
    fn sum<I: Iterator<Item = Money>>(iter: I) -> Money {
        iter.fold(Money::ZERO, Money::saturating_add)
    }
}

impl<'a> Sum<&'a Money> for Money {
    fn sum<I: Iterator<Item = &'a Money>>(iter: I) -> Money {
        iter.copied().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_exact() {
        let cases: [(u128, &str); 10] = [
            (0, "$0.00"),
            (712_500_000_000, "$0.7125"),
            (1_822_500_000_000, "$1.8225"),
            (62_500, "$0.0000000625"),
            (1, "$0.000000000001"),
            (12_500_000_000_000, "$12.50"),
            (3_000_000_000_000, "$3.00"),
            (100_000_000_000, "$0.10"),
            (10_000_000_000, "$0.01"),
            (123_456_789_012_345, "$123.456789012345"),
        ];
        for (picos, want) in cases {
            assert_eq!(Money::from_picos(picos).to_string(), want, "{picos}");
        }
        assert_eq!(Money::from_picos(u128::MAX).to_string(), "$340282366920938463463374607.431768211455");
    }

    #[test]
    fn display_precision_rounds_half_up_and_pads() {
        let m = Money::from_picos(125_000_000_000); // $0.125
        assert_eq!(format!("{m:.2}"), "$0.13");
        assert_eq!(format!("{m:.3}"), "$0.125");
        assert_eq!(format!("{m:.0}"), "$0");
        assert_eq!(format!("{:.4}", Money::from_picos(62_500)), "$0.0000");
        assert_eq!(format!("{:.2}", Money::from_picos(999_999_999_999)), "$1.00");
        assert_eq!(format!("{:.20}", Money::from_picos(1)), "$0.000000000001");
        assert_eq!(format!("{:.2}", Money::from_picos(u128::MAX)), "$340282366920938463463374607.43");
        assert_eq!(format!("{m:>8}"), "  $0.125");
        assert_eq!(format!("{m:<8}|"), "$0.125  |");
        assert_eq!(format!("{m:8}"), "  $0.125");
        assert_eq!(format!("{m:*^9.2}"), "**$0.13**");
    }

    #[test]
    fn arithmetic_saturates() {
        let max = Money::from_picos(u128::MAX);
        assert_eq!(max + Money::from_picos(1), max);
        let mut m = max;
        m += max;
        assert_eq!(m, max);
        assert_eq!(Money::ZERO.saturating_sub(Money::from_picos(5)), Money::ZERO);
        assert_eq!(Money::from_picos(7).saturating_sub(Money::from_picos(5)), Money::from_picos(2));
        let total: Money = [Money::from_picos(1), Money::from_picos(2)].iter().sum();
        assert_eq!(total.picos(), 3);
        let total: Money = [max, max].into_iter().sum();
        assert_eq!(total, max);
    }

    #[test]
    fn as_usd_and_serde() {
        assert_eq!(Money::from_picos(712_500_000_000).as_usd(), 0.7125);
        assert_eq!(Money::from_picos(1_822_500_000_000).as_usd(), 1.8225);
        let m = Money::from_picos(712_500_000_000);
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(json, "712500000000");
        assert_eq!(serde_json::from_str::<Money>(&json).unwrap(), m);
        let big = Money::from_picos(u128::MAX);
        let json = serde_json::to_string(&big).unwrap();
        assert_eq!(serde_json::from_str::<Money>(&json).unwrap(), big);
    }
}
