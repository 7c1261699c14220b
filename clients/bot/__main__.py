"""`python -m clients.bot`: run the Telegram bot until stopped (see clients.bot.app.main)."""
import sys

from clients.bot.app import main

sys.exit(main())
