namespace EptFuzz.Harness.Cases;

/// <summary>
/// Checks a case built in code (by the generator or the reducer) with exactly the rules a file
/// must pass: it prints the case and parses the text, so there is one definition of "valid".
/// Error positions refer to the canonical text (<see cref="CasePrinter.Print"/>).
/// </summary>
public static class CaseValidator
{
    public static IReadOnlyList<CaseError> Check(EptCase c)
    {
        ArgumentNullException.ThrowIfNull(c);
        ParseResult result = CaseParser.Parse(CasePrinter.Print(c), string.IsNullOrEmpty(c.SourceName) ? "<built>" : c.SourceName);
        if (!result.Succeeded)
        {
            return result.Errors;
        }

        // Printing must not lose anything: a built step whose values cannot be written (for
        // example an enum value outside its range) would re-parse as something else.
        return result.Case.Equals(c)
            ? []
            : [new CaseError(result.Case.SourceName, 1, 1, "the case does not survive printing and parsing (a value outside its range?)")];
    }
}
