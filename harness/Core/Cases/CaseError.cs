namespace EptFuzz.Harness.Cases;

/// <summary>
/// A located rejection of a case file; printed as <c>FILE:LINE:COLUMN: message</c>. A case built
/// in code (generated, mutated: its steps have no position) has line 0 and prints
/// <c>NAME: message</c>, the message naming the step instead.
/// </summary>
public sealed record CaseError(string File, int Line, int Column, string Message)
{
    public override string ToString() => Line > 0 ? $"{File}:{Line}:{Column}: {Message}" : $"{File}: {Message}";
}
