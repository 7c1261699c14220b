"""The Telegram front end, run with `python -m clients.bot`: `config` reads the bot's settings (`BotConfig`, the
token), `handlers` answers each kind of message with the client core's verdict and PDF (with `ratelimit`, a token
bucket per user), and `app` sets up redacting logs, builds the application from the handlers and polls Telegram.
The imports go one way (app -> handlers -> config), so there is no cycle."""
