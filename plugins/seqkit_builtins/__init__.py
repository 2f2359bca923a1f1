"""The components that ship with seqkit, registered through `seqkit` entry points."""
