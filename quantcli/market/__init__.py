"""NSE market model: calendar, charges, instruments, corporate actions."""
