"""Background jobs QStash delivers to the app (the order confirmation email, ...).

Standard library only, like the rest of `shared/` outside `orders`, so the Worker
imports it in Pyodide.
"""
