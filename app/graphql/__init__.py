"""The GraphQL skin: parses input, calls domain services, maps rows and errors to types."""
