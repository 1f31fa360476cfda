namespace EptFuzz.Harness.Cases;

/// <summary>A located rejection of a case file; printed as <c>FILE:LINE:COLUMN: message</c>.</summary>
public sealed record CaseError(string File, int Line, int Column, string Message)
{
    public override string ToString() => $"{File}:{Line}:{Column}: {Message}";
}
