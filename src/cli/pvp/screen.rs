//! Printing for `pvp`: plain lines on a pipe; in a terminal, lines above a status line that is
//! redrawn in place (the countdown, or the chat line being typed).
//!
//! Writes that fail are ignored: with stdout closed there is nobody to tell, and the match
//! should still finish rather than panic inside `println!`.

use std::io::Write;

use crossterm::cursor::MoveToColumn;
use crossterm::style::Print;
use crossterm::terminal::{Clear, ClearType};

pub struct Screen {
    /// A terminal in raw mode: lines end in "\r\n" and the status line is kept at the bottom.
    raw: bool,
    status: String,
}

impl Screen {
    pub fn new(raw: bool) -> Screen {
        Screen {
            raw,
            status: String::new(),
        }
    }

    pub fn say(&mut self, line: &str) {
        let mut out = std::io::stdout().lock();
        if !self.raw {
            let _ = writeln!(out, "{line}");
            return;
        }
        let line = line.replace('\n', "\r\n");
        let _ = crossterm::queue!(
            out,
            MoveToColumn(0),
            Clear(ClearType::CurrentLine),
            Print(line),
            Print("\r\n"),
            Print(&self.status)
        );
        let _ = out.flush();
    }

    /// Shows `status` at the bottom of a terminal (nothing on a pipe).
    pub fn set_status(&mut self, status: String) {
        if !self.raw || status == self.status {
            return;
        }
        self.status = status;
        let mut out = std::io::stdout().lock();
        let _ = crossterm::queue!(
            out,
            MoveToColumn(0),
            Clear(ClearType::CurrentLine),
            Print(&self.status)
        );
        let _ = out.flush();
    }

    /// Removes the status line, before the last lines are printed.
    pub fn clear_status(&mut self) {
        self.set_status(String::new());
    }
}
