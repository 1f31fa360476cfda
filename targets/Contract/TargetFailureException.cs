namespace EptFuzz.Contract;

/// <summary>
/// An infrastructure failure of a target (an emulator crashed, hung, or is missing). It is
/// reported as such and never counted as a finding.
/// </summary>
public sealed class TargetFailureException : Exception
{
    public TargetFailureException(string target, string message)
        : base($"{target}: {message}")
    {
        Target = target;
    }

    public TargetFailureException(string target, string message, Exception inner)
        : base($"{target}: {message}", inner)
    {
        Target = target;
    }

    public string Target { get; }
}
