//! A small reader of EDN (the data notation Jepsen writes), enough for history files:
//! nil, booleans, integers, floats, strings, characters, keywords, symbols, vectors, lists,
//! maps, sets, tagged values (`#jepsen.history.Op{...}`), `;` comments and `#_` discards.
//! Errors name the line; nesting is limited, so no input can overflow the stack.

use super::LineError;

/// Nesting depth at most (Jepsen histories use about four).
const DEPTH_MAX: usize = 64;

/// An EDN value.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Edn {
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    /// A keyword, without its colon.
    Keyword(String),
    Symbol(String),
    Vector(Vec<Edn>),
    List(Vec<Edn>),
    Map(Vec<(Edn, Edn)>),
    Set(Vec<Edn>),
    Tagged(String, Box<Edn>),
}

impl Edn {
    /// The value under keyword `key` of a map (or of a tagged map).
    pub(crate) fn get(&self, key: &str) -> Option<&Edn> {
        match self {
            Edn::Map(entries) => entries
                .iter()
                .find(|(k, _)| matches!(k, Edn::Keyword(name) if name == key))
                .map(|(_, v)| v),
            Edn::Tagged(_, inner) => inner.get(key),
            _ => None,
        }
    }

    /// The value as EDN text (for error messages and keys).
    pub(crate) fn show(&self) -> String {
        let join = |items: &[Edn]| items.iter().map(Edn::show).collect::<Vec<_>>().join(" ");
        match self {
            Edn::Nil => "nil".into(),
            Edn::Bool(b) => b.to_string(),
            Edn::Int(i) => i.to_string(),
            Edn::Float(f) => f.to_string(),
            Edn::Str(s) => format!("{s:?}"),
            Edn::Keyword(k) => format!(":{k}"),
            Edn::Symbol(s) => s.clone(),
            Edn::Vector(v) => format!("[{}]", join(v)),
            Edn::List(v) => format!("({})", join(v)),
            Edn::Set(v) => format!("#{{{}}}", join(v)),
            Edn::Map(m) => {
                let parts: Vec<String> = m
                    .iter()
                    .map(|(k, v)| format!("{} {}", k.show(), v.show()))
                    .collect();
                format!("{{{}}}", parts.join(", "))
            }
            Edn::Tagged(tag, v) => format!("#{tag}{}", v.show()),
        }
    }
}

/// Reads the elements of the top-level vector of `text` (or its top-level forms when there
/// is no such vector), each with the line it starts on.
pub(crate) fn parse_ops(text: &str) -> Result<Vec<(usize, Edn)>, LineError> {
    let mut reader = Reader {
        chars: text.chars().collect(),
        at: 0,
        line: 1,
    };
    reader.skip_blank();
    let in_vector = reader.peek() == Some('[');
    if in_vector {
        reader.bump();
    }
    let mut ops = Vec::new();
    loop {
        reader.skip_blank();
        match reader.peek() {
            None if in_vector => {
                return Err(reader.error("the history's vector `[` is never closed"));
            }
            None => return Ok(ops),
            Some(']') if in_vector => {
                reader.bump();
                break;
            }
            Some(_) => {
                let line = reader.line;
                if let Some(form) = reader.form(1)? {
                    ops.push((line, form));
                }
            }
        }
    }
    reader.skip_blank();
    match reader.peek() {
        None => Ok(ops),
        Some(_) => Err(reader.error("text after the history's closing `]`")),
    }
}

struct Reader {
    chars: Vec<char>,
    at: usize,
    line: usize,
}

impl Reader {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.at).copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.at += 1;
        if c == '\n' {
            self.line += 1;
        }
        Some(c)
    }

    fn error(&self, message: impl Into<String>) -> LineError {
        LineError::new(self.line, "line", message)
    }

    fn skip_blank(&mut self) {
        while let Some(c) = self.peek() {
            if c == ';' {
                while self.peek().is_some_and(|c| c != '\n') {
                    self.bump();
                }
            } else if c.is_whitespace() || c == ',' {
                self.bump();
            } else {
                return;
            }
        }
    }

    /// One form; `None` for a `#_` discard.
    fn form(&mut self, depth: usize) -> Result<Option<Edn>, LineError> {
        if depth > DEPTH_MAX {
            return Err(self.error(format!("nested deeper than {DEPTH_MAX} levels")));
        }
        self.skip_blank();
        let Some(c) = self.peek() else {
            return Err(self.error("unexpected end of file"));
        };
        let value = match c {
            '[' => Edn::Vector(self.items(']', depth)?),
            '(' => Edn::List(self.items(')', depth)?),
            '{' => self.map(depth)?,
            '"' => Edn::Str(self.string()?),
            '\\' => {
                self.bump();
                Edn::Str(self.token())
            }
            '#' => return self.dispatch(depth),
            ']' | ')' | '}' => return Err(self.error(format!("unexpected `{c}`"))),
            _ => self.atom()?,
        };
        Ok(Some(value))
    }

    fn dispatch(&mut self, depth: usize) -> Result<Option<Edn>, LineError> {
        self.bump();
        match self.peek() {
            Some('{') => Ok(Some(Edn::Set(self.items('}', depth)?))),
            Some('_') => {
                self.bump();
                self.form(depth + 1)?;
                Ok(None)
            }
            _ => {
                let tag = self.token();
                if tag.is_empty() {
                    return Err(self.error("`#` without a tag"));
                }
                match self.form(depth + 1)? {
                    Some(v) => Ok(Some(Edn::Tagged(tag, Box::new(v)))),
                    None => Err(self.error(format!("#{tag} tags nothing"))),
                }
            }
        }
    }

    fn items(&mut self, close: char, depth: usize) -> Result<Vec<Edn>, LineError> {
        self.bump();
        let mut items = Vec::new();
        loop {
            self.skip_blank();
            match self.peek() {
                None => return Err(self.error(format!("`{close}` missing at end of file"))),
                Some(c) if c == close => {
                    self.bump();
                    return Ok(items);
                }
                Some(_) => items.extend(self.form(depth + 1)?),
            }
        }
    }

    fn map(&mut self, depth: usize) -> Result<Edn, LineError> {
        let items = self.items('}', depth)?;
        if items.len() % 2 != 0 {
            return Err(self.error("a map with a key but no value"));
        }
        let mut it = items.into_iter();
        let mut entries = Vec::new();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            entries.push((k, v));
        }
        Ok(Edn::Map(entries))
    }

    fn string(&mut self) -> Result<String, LineError> {
        self.bump();
        let mut s = String::new();
        loop {
            match self.bump() {
                None => return Err(self.error("unterminated string")),
                Some('"') => return Ok(s),
                Some('\\') => match self.bump() {
                    Some('n') => s.push('\n'),
                    Some('t') => s.push('\t'),
                    Some('r') => s.push('\r'),
                    Some('u') => {
                        let hex: String = (0..4).filter_map(|_| self.bump()).collect();
                        let c = u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32);
                        s.push(c.ok_or_else(|| self.error(format!("bad escape \\u{hex}")))?);
                    }
                    Some(c) => s.push(c),
                    None => return Err(self.error("unterminated string")),
                },
                Some(c) => s.push(c),
            }
        }
    }

    fn token(&mut self) -> String {
        let mut out = String::new();
        while let Some(c) = self.peek() {
            let ends = c.is_whitespace()
                || matches!(c, ',' | '[' | ']' | '(' | ')' | '{' | '}' | '"' | ';');
            if ends {
                break;
            }
            out.push(c);
            self.bump();
        }
        out
    }

    fn atom(&mut self) -> Result<Edn, LineError> {
        let token = self.token();
        if token.is_empty() {
            return Err(self.error("unexpected character"));
        }
        Ok(match token.as_str() {
            "nil" => Edn::Nil,
            "true" => Edn::Bool(true),
            "false" => Edn::Bool(false),
            _ if token.starts_with(':') => Edn::Keyword(token[1..].to_string()),
            _ if starts_number(&token) => {
                number(&token).ok_or_else(|| self.error(format!("cannot read number {token:?}")))?
            }
            _ => Edn::Symbol(token),
        })
    }
}

fn starts_number(token: &str) -> bool {
    let digits = token.strip_prefix(['-', '+']).unwrap_or(token);
    digits.starts_with(|c: char| c.is_ascii_digit())
}

fn number(token: &str) -> Option<Edn> {
    let plain = token.strip_suffix('N').unwrap_or(token);
    if let Ok(i) = plain.parse::<i64>() {
        return Some(Edn::Int(i));
    }
    let float = token.strip_suffix('M').unwrap_or(token);
    float.parse::<f64>().ok().map(Edn::Float)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_shapes_jepsen_writes() {
        let text = "[{:process 0, :type :invoke, :f :cas, :value [1 2]}\n\
                    #jepsen.history.Op{:process :nemesis, :type :info, :f :start, :value nil}\n\
                    {:process 1 :type :ok :f :txn :value [[:r :x 3] [:w :y -4]] :note \"a \\\"b\\\"\"} ; c\n]";
        let ops = parse_ops(text).expect("parses");
        assert_eq!(ops.len(), 3);
        assert_eq!(ops[2].0, 3, "line of the third op");
        let pair = Edn::Vector(vec![Edn::Int(1), Edn::Int(2)]);
        assert_eq!(ops[0].1.get("value"), Some(&pair));
        let nemesis = Edn::Keyword("nemesis".into());
        assert_eq!(ops[1].1.get("process"), Some(&nemesis));
        assert_eq!(ops[2].1.get("note"), Some(&Edn::Str("a \"b\"".into())));
    }

    #[test]
    fn bad_edn_is_an_error_with_a_line_not_a_panic() {
        let deep = "[".repeat(100);
        for bad in [
            "[{:a 1",
            "[{:a}]",
            "[1 2] 3",
            "{:a \"x",
            "[)",
            "#",
            deep.as_str(),
        ] {
            assert!(parse_ops(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_ops("[\n\n{:a 1 :b}]").unwrap_err().line, 3);
    }
}
