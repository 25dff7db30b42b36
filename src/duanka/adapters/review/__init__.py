"""The review loop: queue export, Label Studio I/O, feedback import, rate estimates from the random sample."""
