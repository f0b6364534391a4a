//! The terminal while the dashboard owns it: raw mode and the alternate screen, given back on
//! every exit path. Dropping the guard restores the terminal (quit and error paths); a panic
//! of the dashboard's own thread restores it before the previous hook reports (panic path),
//! and a panic of any other thread is logged without touching the screen. Frames are wrapped in
//! synchronized output, so a slow link never shows half a frame.

use std::io::{self, Stdout, Write};
use std::mem::ManuallyDrop;
use std::panic::PanicHookInfo;
use std::sync::Arc;

use crossterm::cursor::{Hide, Show};
use crossterm::terminal::{
    BeginSynchronizedUpdate, EndSynchronizedUpdate, EnterAlternateScreen, LeaveAlternateScreen,
    disable_raw_mode, enable_raw_mode,
};
use crossterm::{execute, queue};
use ratatui::Frame;
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use ratatui::layout::Size;

type Hook = Box<dyn Fn(&PanicHookInfo<'_>) + Sync + Send + 'static>;

/// Owns the terminal; restores it when dropped.
pub struct TerminalGuard {
    /// Never dropped: ratatui's `Drop` prints (and so panics) when the terminal is already gone,
    /// as after SIGHUP; [`restore`] shows the cursor instead.
    terminal: ManuallyDrop<Terminal<CrosstermBackend<Stdout>>>,
    previous_hook: Arc<Hook>,
}

impl TerminalGuard {
    /// Takes the terminal: panic hook first, then raw mode, alternate screen, hidden cursor.
    pub fn enter() -> io::Result<TerminalGuard> {
        let previous_hook: Arc<Hook> = Arc::new(std::panic::take_hook());
        let chained = Arc::clone(&previous_hook);
        let owner = std::thread::current().id();
        std::panic::set_hook(Box::new(move |info| {
            if std::thread::current().id() == owner {
                restore();
                chained(info);
            } else {
                // Another thread's panic (a download's bug, caught and recorded as its task's
                // failure): the dashboard goes on drawing, so the screen stays its own and
                // the report goes to the log instead of over the frame.
                tracing::error!("{info}");
            }
        }));
        let guard = || -> io::Result<Terminal<CrosstermBackend<Stdout>>> {
            enable_raw_mode()?;
            execute!(io::stdout(), EnterAlternateScreen, Hide)?;
            Terminal::new(CrosstermBackend::new(io::stdout()))
        };
        match guard() {
            Ok(terminal) => Ok(TerminalGuard {
                terminal: ManuallyDrop::new(terminal),
                previous_hook,
            }),
            Err(e) => {
                restore();
                put_back(previous_hook);
                Err(e)
            }
        }
    }

    /// Draws one frame inside a synchronized update; ratatui sends only the changed cells.
    pub fn draw(&mut self, render: impl FnOnce(&mut Frame<'_>)) -> io::Result<()> {
        queue!(self.terminal.backend_mut(), BeginSynchronizedUpdate)?;
        self.terminal.draw(render)?;
        execute!(self.terminal.backend_mut(), EndSynchronizedUpdate)?;
        Ok(())
    }

    /// The terminal's size now.
    pub fn size(&self) -> io::Result<Size> {
        self.terminal.size()
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore();
        put_back(Arc::clone(&self.previous_hook));
    }
}

/// Gives the terminal back: cooked mode, main screen, visible cursor. Safe to repeat.
fn restore() {
    let _ = disable_raw_mode();
    let mut out = io::stdout();
    let _ = execute!(out, EndSynchronizedUpdate, LeaveAlternateScreen, Show);
    let _ = out.flush();
}

/// Reinstalls the panic hook that was there before the dashboard.
fn put_back(previous: Arc<Hook>) {
    let _ = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| previous(info)));
}
