//! How the terminal commands (`pvp`, `verify`) name seats and modes to people.

use game::Seat;
use game::matches::Mode;

pub(crate) fn seat_name(seat: Seat) -> &'static str {
    match seat {
        Seat::A => "A",
        Seat::B => "B",
    }
}

pub(crate) fn mode_name(mode: Mode) -> &'static str {
    match mode {
        Mode::BestOf1 => "best of 1",
        Mode::BestOf3 => "best of 3",
        Mode::BestOf5 => "best of 5",
    }
}
