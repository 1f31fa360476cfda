namespace EptFuzz.Harness.Cases;

/// <summary>Collects located errors of one file, up to <see cref="CaseLimits.MaxErrors"/>.</summary>
internal sealed class ErrorSink
{
    private readonly List<CaseError> errors = [];

    public ErrorSink(string file)
    {
        File = file;
    }

    public string File { get; }

    public int Count => errors.Count;

    /// <summary>True once the cap is reached: the parser stops reading, the file is rejected anyway.</summary>
    public bool IsFull => errors.Count >= CaseLimits.MaxErrors;

    public IReadOnlyList<CaseError> Errors => errors;

    public void Report(int line, int column, string message)
    {
        if (!IsFull)
        {
            // Every rejection is located: positions are 1-based even for a whole-file problem.
            errors.Add(new CaseError(File, Math.Max(1, line), Math.Max(1, column), message));
        }
    }
}
