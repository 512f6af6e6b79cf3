//! API well numbers (American Petroleum Institute Bulletin D12A): the permanent identifier
//! regulators and operators use for a well.
//!
//! `SS-CCC-UUUUU[-TT[-EE]]`: a 2-digit state code, a 3-digit county code, a 5-digit
//! unique well identifier, then optionally the directional sidetrack code and the event
//! sequence code — the 10-, 12- and 14-digit forms. Dashes are optional on input;
//! [`ApiNumber::canonical`] writes them.
//!
//! Checked here: the state code is a state (01–51, 08 being the District of Columbia) or an
//! offshore pseudo-state (55 Alaska offshore, 56 Pacific coast offshore, 60 northern Gulf
//! of Mexico, 61 Atlantic coast offshore); 52–54 are reserved and nothing else exists.
//! The county code is not 000 (county codes are normally odd, but counties created later
//! got even codes, e.g. 02-012 La Paz AZ, 30-006 Cibola NM, and Kern CA overflows into
//! 04-030, so parity is not a check). The unique identifier is not 00000.

/// A valid API well number.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ApiNumber {
    digits: String,
}

/// Why a text is not an API well number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiNumberError {
    /// Not 10, 12 or 14 digits (dashes aside), or other characters.
    #[error(
        "{0:?} is not an API well number: expected 10, 12 or 14 digits as SS-CCC-UUUUU[-TT[-EE]]"
    )]
    Shape(String),
    /// The state code is no state or offshore area.
    #[error(
        "{number:?}: state code {code:02} is not a state (01-51) or offshore area (55, 56, 60, 61)"
    )]
    State {
        /// The number as given.
        number: String,
        /// Its state code.
        code: u8,
    },
    /// County code 000.
    #[error("{0:?}: county code 000 does not exist")]
    County(String),
    /// Unique well identifier 00000.
    #[error("{0:?}: unique well identifier 00000 does not exist")]
    Unique(String),
}

const OFFSHORE: [(u8, &str); 4] = [
    (55, "Alaska offshore"),
    (56, "Pacific coast offshore"),
    (60, "Northern Gulf of Mexico"),
    (61, "Atlantic coast offshore"),
];

const STATES: [&str; 51] = [
    "Alabama",
    "Arizona",
    "Arkansas",
    "California",
    "Colorado",
    "Connecticut",
    "Delaware",
    "District of Columbia",
    "Florida",
    "Georgia",
    "Idaho",
    "Illinois",
    "Indiana",
    "Iowa",
    "Kansas",
    "Kentucky",
    "Louisiana",
    "Maine",
    "Maryland",
    "Massachusetts",
    "Michigan",
    "Minnesota",
    "Mississippi",
    "Missouri",
    "Montana",
    "Nebraska",
    "Nevada",
    "New Hampshire",
    "New Jersey",
    "New Mexico",
    "New York",
    "North Carolina",
    "North Dakota",
    "Ohio",
    "Oklahoma",
    "Oregon",
    "Pennsylvania",
    "Rhode Island",
    "South Carolina",
    "South Dakota",
    "Tennessee",
    "Texas",
    "Utah",
    "Vermont",
    "Virginia",
    "Washington",
    "West Virginia",
    "Wisconsin",
    "Wyoming",
    "Alaska",
    "Hawaii",
];

impl ApiNumber {
    /// Parses and checks a number (dashes optional; surrounding spaces ignored).
    pub fn parse(text: &str) -> Result<ApiNumber, ApiNumberError> {
        let trimmed = text.trim();
        let digits: String = trimmed.chars().filter(|c| *c != '-').collect();
        let groups_ok = trimmed
            .split('-')
            .all(|g| !g.is_empty() && g.bytes().all(|b| b.is_ascii_digit()));
        if !groups_ok || !matches!(digits.len(), 10 | 12 | 14) {
            return Err(ApiNumberError::Shape(text.to_owned()));
        }
        // Where dashes are used they must sit between the groups.
        if trimmed.contains('-') {
            let lengths: Vec<usize> = trimmed.split('-').map(str::len).collect();
            let expected = [2usize, 3, 5, 2, 2];
            if lengths.len() < 3 || lengths[..] != expected[..lengths.len()] {
                return Err(ApiNumberError::Shape(text.to_owned()));
            }
        }
        let state: u8 = digits[0..2].parse().expect("two digits");
        if state_name(state).is_none() {
            return Err(ApiNumberError::State {
                number: text.to_owned(),
                code: state,
            });
        }
        if &digits[2..5] == "000" {
            return Err(ApiNumberError::County(text.to_owned()));
        }
        if &digits[5..10] == "00000" {
            return Err(ApiNumberError::Unique(text.to_owned()));
        }
        Ok(ApiNumber { digits })
    }

    /// `SS-CCC-UUUUU[-TT[-EE]]`.
    pub fn canonical(&self) -> String {
        let d = &self.digits;
        let mut out = format!("{}-{}-{}", &d[0..2], &d[2..5], &d[5..10]);
        for part in [d.get(10..12), d.get(12..14)].into_iter().flatten() {
            out.push('-');
            out.push_str(part);
        }
        out
    }

    /// The state code.
    pub fn state_code(&self) -> u8 {
        self.digits[0..2].parse().expect("checked")
    }

    /// The county code.
    pub fn county_code(&self) -> u16 {
        self.digits[2..5].parse().expect("checked")
    }

    /// The state or offshore area the code names.
    pub fn state_name(&self) -> &'static str {
        state_name(self.state_code()).expect("checked")
    }
}

/// The state or offshore area of an API state code.
pub fn state_name(code: u8) -> Option<&'static str> {
    match code {
        1..=51 => Some(STATES[usize::from(code) - 1]),
        _ => OFFSHORE.iter().find(|(c, _)| *c == code).map(|(_, n)| *n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_forms_parse_with_or_without_dashes() {
        for (text, canonical) in [
            ("42-501-20130", "42-501-20130"),
            ("4250120130", "42-501-20130"),
            ("42-501-20130-03", "42-501-20130-03"),
            (" 42-501-20130-03-00 ", "42-501-20130-03-00"),
            ("42501201300300", "42-501-20130-03-00"),
            ("30-006-00001", "30-006-00001"),
            ("60-817-40001-00-00", "60-817-40001-00-00"),
        ] {
            let n = ApiNumber::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(n.canonical(), canonical);
        }
        let n = ApiNumber::parse("42-501-20130").unwrap();
        assert_eq!(
            (n.state_code(), n.county_code(), n.state_name()),
            (42, 501, "Texas")
        );
        assert_eq!(
            ApiNumber::parse("08-001-00001").unwrap().state_name(),
            "District of Columbia"
        );
    }

    #[test]
    fn bad_numbers_say_what_is_wrong() {
        for text in [
            "42-501-2013",
            "42501201301",
            "42-5012-0130",
            "4a-501-20130",
            "",
            "42--501-20130",
        ] {
            assert!(
                matches!(ApiNumber::parse(text), Err(ApiNumberError::Shape(_))),
                "{text}"
            );
        }
        assert!(matches!(
            ApiNumber::parse("52-001-00001"),
            Err(ApiNumberError::State { code: 52, .. })
        ));
        assert!(matches!(
            ApiNumber::parse("00-001-00001"),
            Err(ApiNumberError::State { .. })
        ));
        assert!(matches!(
            ApiNumber::parse("99-001-00001"),
            Err(ApiNumberError::State { .. })
        ));
        assert!(matches!(
            ApiNumber::parse("42-000-00001"),
            Err(ApiNumberError::County(_))
        ));
        assert!(matches!(
            ApiNumber::parse("42-001-00000"),
            Err(ApiNumberError::Unique(_))
        ));
        let message = ApiNumber::parse("52-001-00001").unwrap_err().to_string();
        assert!(message.contains("state code 52"), "{message}");
    }
}
