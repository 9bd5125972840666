//! YAML 1.1 scalars as go-yaml v2 resolves them (resolve.go): booleans
//! (`yes`/`no`/`on`/`off`/`y`/`n`), Go's integer and float syntaxes, and
//! floats written back the way Go formats a float32.

use super::yaml11::Value;

/// go-yaml v2's `resolve` for an untagged plain scalar (resolve.go).
pub fn resolve_plain(s: &str) -> Value {
    match s {
        "y" | "Y" | "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => {
            return Value::Bool(true)
        }
        "n" | "N" | "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => {
            return Value::Bool(false)
        }
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        ".nan" | ".NaN" | ".NAN" => return Value::Float(f64::NAN),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Value::Float(f64::INFINITY)
        }
        "-.inf" | "-.Inf" | "-.INF" => return Value::Float(f64::NEG_INFINITY),
        _ => {}
    }
    let Some(&first) = s.as_bytes().first() else {
        return Value::Null;
    };
    if first == b'.' {
        if let Ok(f) = go_parse_float(s) {
            return Value::Float(f);
        }
    } else if first.is_ascii_digit() || first == b'+' || first == b'-' {
        if is_timestamp(s) {
            return Value::Str(s.to_owned());
        }
        let plain: String = s.chars().filter(|&c| c != '_').collect();
        if let Some(v) = go_parse_int(&plain) {
            return v;
        }
        if is_yaml_float(&plain) {
            if let Ok(f) = plain.parse::<f64>() {
                return Value::Float(f);
            }
        }
        if let Some(bits) = plain.strip_prefix("-0b") {
            if let Ok(i) = i64::from_str_radix(&format!("-{bits}"), 2) {
                return Value::Int(i);
            }
        }
    }
    Value::Str(s.to_owned())
}

/// Go's `strconv.ParseInt(s, 0, 64)`, then `ParseUint`: sign, then a `0x`,
/// `0o`, `0b` or `0` (octal) prefix.
fn go_parse_int(s: &str) -> Option<Value> {
    let (neg, body) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let lower = body.to_ascii_lowercase();
    let (radix, digits) = if let Some(d) = lower.strip_prefix("0x") {
        (16, d)
    } else if let Some(d) = lower.strip_prefix("0o") {
        (8, d)
    } else if let Some(d) = lower.strip_prefix("0b") {
        (2, d)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, &lower[1..])
    } else {
        (10, lower.as_str())
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let magnitude = u128::from_str_radix(digits, radix).ok()?;
    if neg {
        let v = i128::try_from(magnitude).ok()?.checked_neg()?;
        i64::try_from(v).ok().map(Value::Int)
    } else if let Ok(v) = i64::try_from(magnitude) {
        Some(Value::Int(v))
    } else {
        u64::try_from(magnitude).ok().map(Value::Uint)
    }
}

/// go-yaml's `yamlStyleFloat`: `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`.
fn is_yaml_float(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = usize::from(matches!(b.first(), Some(b'+' | b'-')));
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - start
    };
    if b.get(i) == Some(&b'.') {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    } else {
        if digits(&mut i) == 0 {
            return false;
        }
        if b.get(i) == Some(&b'.') {
            i += 1;
            digits(&mut i);
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

/// Go's `strconv.ParseFloat` for the `.`-led forms (`.5`, `.5e3`).
fn go_parse_float(s: &str) -> Result<f64, ()> {
    if is_yaml_float(s) {
        s.parse::<f64>().map_err(|_| ())
    } else {
        Err(())
    }
}

/// go-yaml's timestamp guess: four digits and a dash, then one of the
/// layouts it tries. A timestamp decoded into `interface{}` stays a string;
/// this only keeps `2024-01-02` from reading as a number.
fn is_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 5 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b'-'
}

/// Go's `strconv.FormatFloat(f, 'g', -1, 32)`, which sigs.k8s.io/yaml uses
/// when a YAML float lands in a string field: the shortest float32 digits,
/// exponent form when the exponent is below -4 or at least 6.
pub fn go_float32(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    #[allow(clippy::cast_possible_truncation)]
    let v = f as f32;
    if v == 0.0 {
        return if v.is_sign_negative() { "-0" } else { "0" }.into();
    }
    // Rust's `{:e}` prints the shortest round-trip digits, as Go does.
    let e = format!("{v:e}");
    let (mantissa, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let neg = mantissa.starts_with('-');
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let sign = if neg { "-" } else { "" };
    // Shortest 'g' switches to the exponent form at exponent 6, whatever
    // the number of digits (strconv's formatDigits: `if shortest { eprec = 6 }`).
    let nd = i32::try_from(digits.len()).unwrap_or(1);
    if !(-4..6).contains(&exp) {
        let (head, tail) = digits.split_at(1);
        let frac = if tail.is_empty() {
            String::new()
        } else {
            format!(".{tail}")
        };
        let esign = if exp < 0 { '-' } else { '+' };
        return format!("{sign}{head}{frac}e{esign}{:02}", exp.abs());
    }
    // Fixed notation.
    let point = exp + 1;
    let out = if point <= 0 {
        format!(
            "0.{}{digits}",
            "0".repeat(usize::try_from(-point).unwrap_or(0))
        )
    } else if point >= nd {
        format!(
            "{digits}{}",
            "0".repeat(usize::try_from(point - nd).unwrap_or(0))
        )
    } else {
        let (a, b) = digits.split_at(usize::try_from(point).unwrap_or(0));
        format!("{a}.{b}")
    };
    format!("{sign}{out}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_format_as_go_float32() {
        assert_eq!(go_float32(1.2345678901234568e23), "1.2345679e+23");
        assert_eq!(go_float32(1.1), "1.1");
        assert_eq!(go_float32(1000.0), "1000");
        assert_eq!(go_float32(1e21), "1e+21");
        assert_eq!(go_float32(123456.0), "123456");
        assert_eq!(go_float32(1234567.0), "1.234567e+06");
        assert_eq!(go_float32(0.0001), "0.0001");
        assert_eq!(go_float32(0.00001), "1e-05");
        assert_eq!(go_float32(-2.5), "-2.5");
    }
}
