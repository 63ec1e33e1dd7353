//! Cross-origin access for browser clients: off unless `CORS_ALLOW_ORIGINS` lists origins.

/// Which browser origins may call the API.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Cors {
    /// No CORS headers at all (the tutorial's behaviour, and the default).
    #[default]
    Off,
    /// Any origin (`*`).
    AnyOrigin,
    /// Exactly these origins (e.g. `https://example.com`).
    Origins(Vec<String>),
}

impl Cors {
    /// Parses `CORS_ALLOW_ORIGINS`: unset or empty → off, `*` → any, else a comma-separated list.
    pub fn parse(setting: Option<&str>) -> Cors {
        match setting.map(str::trim) {
            None | Some("") => Cors::Off,
            Some("*") => Cors::AnyOrigin,
            Some(list) => Cors::Origins(
                list.split(',')
                    .map(|o| o.trim().trim_end_matches('/').to_owned())
                    .filter(|o| !o.is_empty())
                    .collect(),
            ),
        }
    }

    /// Whether CORS is on at all (preflight requests are answered only then).
    pub fn enabled(&self) -> bool {
        !matches!(self, Cors::Off)
    }

    /// The headers every reply to a request from `origin` carries.
    pub fn headers(&self, origin: Option<&str>) -> Vec<(&'static str, String)> {
        let allowed = match (self, origin) {
            (Cors::Off, _) | (_, None) => None,
            (Cors::AnyOrigin, Some(_)) => Some("*".to_owned()),
            (Cors::Origins(list), Some(origin)) => list.iter().find(|o| *o == origin).cloned(),
        };
        match allowed {
            Some(value) => vec![
                ("access-control-allow-origin", value),
                ("vary", "origin".to_owned()),
            ],
            None => Vec::new(),
        }
    }

    /// Extra headers of a preflight (`OPTIONS`) reply.
    pub fn preflight_headers(&self, methods: &'static str) -> Vec<(&'static str, String)> {
        vec![
            (
                "access-control-allow-methods",
                format!("{methods}, OPTIONS"),
            ),
            ("access-control-allow-headers", "content-type".to_owned()),
            ("access-control-max-age", "600".to_owned()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::Cors;

    #[test]
    fn origins_are_matched_exactly() {
        let cors = Cors::parse(Some("https://a.example, https://b.example/"));
        assert_eq!(
            cors.headers(Some("https://b.example"))[0].1,
            "https://b.example"
        );
        assert!(cors.headers(Some("https://evil.example")).is_empty());
        assert!(Cors::parse(None)
            .headers(Some("https://a.example"))
            .is_empty());
        assert_eq!(Cors::parse(Some("*")).headers(Some("https://x"))[0].1, "*");
    }
}
