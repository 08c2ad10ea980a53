//! Where the player's commands come from: single keys in a terminal, lines from a pipe, or
//! nothing at all (`--moves`).
//!
//! Standard input is read on a thread of its own rather than a tokio blocking task: a read
//! blocked on a terminal cannot be cancelled, and a runtime waits for its blocking tasks when it
//! shuts down, so the command would hang at its end until a key was pressed. The thread hands
//! what it reads over a bounded channel and blocks when the channel is full, so input typed
//! faster than it is handled waits in the pipe instead of growing a queue.

use std::io::{BufRead, Read};

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use game::Choice;
use tokio::sync::mpsc;

use super::player::Command;

/// Inputs read but not yet handled, at most.
const INPUT_QUEUE: usize = 64;
/// The longest line read from a pipe; a longer one is skipped whole. A chat line is at most 200
/// characters, 800 bytes of UTF-8.
const MAX_LINE_BYTES: usize = 1024;

/// What the reader thread saw.
pub enum Input {
    Key(KeyEvent),
    Line(String),
    /// A line longer than `MAX_LINE_BYTES`, skipped.
    Overlong,
}

/// Reads key presses; the terminal must be in raw mode ([`RawMode`]).
pub fn read_keys() -> mpsc::Receiver<Input> {
    let (sender, receiver) = mpsc::channel(INPUT_QUEUE);
    std::thread::spawn(move || {
        while let Ok(event) = crossterm::event::read() {
            let crossterm::event::Event::Key(key) = event else {
                continue;
            };
            if key.kind == KeyEventKind::Release {
                continue;
            }
            if sender.blocking_send(Input::Key(key)).is_err() {
                return;
            }
        }
    });
    receiver
}

/// Reads standard input line by line until it ends (the channel then closes).
pub fn read_lines() -> mpsc::Receiver<Input> {
    let (sender, receiver) = mpsc::channel(INPUT_QUEUE);
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        while let Ok(Some(line)) = next_line(&mut stdin) {
            let input = line.map_or(Input::Overlong, Input::Line);
            if sender.blocking_send(input).is_err() {
                return;
            }
        }
    });
    receiver
}

/// The next line without its line ending: `None` at the end of the input, `Some(None)` for a
/// line too long to keep.
fn next_line(input: &mut impl BufRead) -> std::io::Result<Option<Option<String>>> {
    let limit = MAX_LINE_BYTES as u64;
    let mut line = Vec::new();
    if input.by_ref().take(limit).read_until(b'\n', &mut line)? == 0 {
        return Ok(None);
    }
    if line.last() != Some(&b'\n') && line.len() == MAX_LINE_BYTES {
        loop {
            let mut rest = Vec::new();
            let read = input.by_ref().take(limit).read_until(b'\n', &mut rest)?;
            if read == 0 || rest.last() == Some(&b'\n') {
                return Ok(Some(None));
            }
        }
    }
    let text = String::from_utf8_lossy(&line);
    Ok(Some(Some(text.trim_end_matches(['\r', '\n']).to_owned())))
}

/// A line of input: a move, `q` to leave, or chat (a leading `/` makes anything chat).
pub fn parse_line(line: &str) -> Option<Command> {
    let line = line.trim();
    if let Some(chat) = line.strip_prefix('/') {
        let chat = chat.trim();
        return (!chat.is_empty()).then(|| Command::Chat(chat.to_owned()));
    }
    match line.to_ascii_lowercase().as_str() {
        "" => None,
        "r" | "rock" => Some(Command::Move(Choice::Rock)),
        "p" | "paper" => Some(Command::Move(Choice::Paper)),
        "s" | "scissors" => Some(Command::Move(Choice::Scissors)),
        "q" | "quit" | "leave" => Some(Command::Leave),
        _ => Some(Command::Chat(line.to_owned())),
    }
}

/// `--moves`: letters r, p and s (any case); commas and spaces between them are ignored.
pub fn parse_moves(text: &str) -> Result<Vec<Choice>, String> {
    let moves = text
        .chars()
        .filter(|c| *c != ',' && !c.is_whitespace())
        .map(|c| match c.to_ascii_lowercase() {
            'r' => Ok(Choice::Rock),
            'p' => Ok(Choice::Paper),
            's' => Ok(Choice::Scissors),
            other => Err(format!(
                "{other:?} is not a move: use r, p and s, e.g. \"rpsr\""
            )),
        })
        .collect::<Result<Vec<_>, _>>()?;
    if moves.is_empty() {
        return Err("give at least one move, e.g. \"rps\"".to_owned());
    }
    if moves.len() > game::matches::MAX_ROUNDS as usize {
        return Err(format!(
            "at most {} moves: no match has more rounds",
            game::matches::MAX_ROUNDS
        ));
    }
    Ok(moves)
}

/// Turns key presses into commands: r, p, s move; q (or Ctrl-C) leaves; `/` or Enter starts a
/// chat line, which Enter sends and Esc drops.
#[derive(Default)]
pub struct Keys {
    chat: Option<String>,
}

impl Keys {
    pub fn press(&mut self, key: KeyEvent) -> Option<Command> {
        let control = key.modifiers.contains(KeyModifiers::CONTROL);
        if control && matches!(key.code, KeyCode::Char('c' | 'd')) {
            self.chat = None;
            return Some(Command::Leave);
        }
        if let Some(line) = &mut self.chat {
            match key.code {
                KeyCode::Enter => {
                    let line = self.chat.take().unwrap_or_default();
                    let line = line.trim();
                    return (!line.is_empty()).then(|| Command::Chat(line.to_owned()));
                }
                KeyCode::Esc => self.chat = None,
                KeyCode::Backspace => {
                    line.pop();
                }
                KeyCode::Char(c) if line.chars().count() < protocol::MAX_CHAT_CHARS => {
                    line.push(c);
                }
                _ => {}
            }
            return None;
        }
        match key.code {
            KeyCode::Char('r' | 'R') => Some(Command::Move(Choice::Rock)),
            KeyCode::Char('p' | 'P') => Some(Command::Move(Choice::Paper)),
            KeyCode::Char('s' | 'S') => Some(Command::Move(Choice::Scissors)),
            KeyCode::Char('q' | 'Q') => Some(Command::Leave),
            KeyCode::Char('/') | KeyCode::Enter => {
                self.chat = Some(String::new());
                None
            }
            _ => None,
        }
    }

    /// The chat line being typed, as the status line shows it.
    pub fn prompt(&self) -> Option<String> {
        self.chat
            .as_ref()
            .map(|line| format!("chat> {line}_   (Enter sends, Esc drops)"))
    }
}

/// The terminal in raw mode (keys arrive one by one, unechoed) for as long as this lives; it
/// is restored on drop, on every path out including a panic's unwinding.
pub struct RawMode;

impl RawMode {
    pub fn enable() -> std::io::Result<RawMode> {
        crossterm::terminal::enable_raw_mode()?;
        Ok(RawMode)
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = crossterm::terminal::disable_raw_mode();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    fn is_move(command: Option<Command>, expected: Choice) -> bool {
        matches!(command, Some(Command::Move(choice)) if choice == expected)
    }

    #[test]
    fn lines_are_moves_leaving_or_chat() {
        assert!(is_move(parse_line(" R "), Choice::Rock));
        assert!(is_move(parse_line("scissors"), Choice::Scissors));
        assert!(matches!(parse_line("q"), Some(Command::Leave)));
        assert!(matches!(parse_line("gg wp"), Some(Command::Chat(t)) if t == "gg wp"));
        assert!(matches!(parse_line("/r"), Some(Command::Chat(t)) if t == "r"));
        assert!(parse_line("  ").is_none() && parse_line("/").is_none());
    }

    #[test]
    fn moves_are_letters_and_bounded() {
        assert_eq!(
            parse_moves("r, P s").unwrap(),
            [Choice::Rock, Choice::Paper, Choice::Scissors]
        );
        assert!(parse_moves("rx").unwrap_err().contains("'x' is not a move"));
        assert!(parse_moves("").is_err());
        assert!(parse_moves(&"r".repeat(101)).is_err());
    }

    #[test]
    fn an_overlong_line_is_skipped_whole_and_the_next_one_read() {
        let text = format!("{}\nr\n", "x".repeat(3000));
        let mut input = std::io::Cursor::new(text.into_bytes());
        assert_eq!(next_line(&mut input).unwrap(), Some(None));
        assert_eq!(next_line(&mut input).unwrap(), Some(Some("r".to_owned())));
        assert_eq!(next_line(&mut input).unwrap(), None);
    }

    #[test]
    fn keys_move_at_once_and_chat_is_typed_then_sent() {
        let mut keys = Keys::default();
        assert!(is_move(keys.press(key(KeyCode::Char('p'))), Choice::Paper));
        assert!(keys.press(key(KeyCode::Char('/'))).is_none());
        for c in "hir".chars() {
            assert!(
                keys.press(key(KeyCode::Char(c))).is_none(),
                "typed, not moved"
            );
        }
        keys.press(key(KeyCode::Backspace));
        assert_eq!(
            keys.prompt().unwrap(),
            "chat> hi_   (Enter sends, Esc drops)"
        );
        assert!(matches!(keys.press(key(KeyCode::Enter)), Some(Command::Chat(t)) if t == "hi"));
        keys.press(key(KeyCode::Enter));
        keys.press(key(KeyCode::Char('x')));
        assert!(keys.press(key(KeyCode::Esc)).is_none());
        assert!(keys.prompt().is_none(), "Esc drops the line");
        let control_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        assert!(matches!(keys.press(control_c), Some(Command::Leave)));
    }
}
