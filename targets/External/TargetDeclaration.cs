using EptFuzz.Targets.External.Protocol;

namespace EptFuzz.Targets.External;

/// <summary>What a target said about itself in its HELLO reply.</summary>
public sealed record TargetDeclaration(string Name, uint Version, TargetOperations Operations, TargetPageSizes PageSizes, TargetWalkers Walkers)
{
    /// <summary>A target name is a word: it appears in finding signatures and file names.</summary>
    public static bool IsValidName(string name) =>
        name.Length is > 0 and <= 40 && name.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_') && !ReservedNames.Contains(name);

    /// <summary>Names of the built-in targets, which an external one may not take.</summary>
    public static IReadOnlySet<string> ReservedNames { get; } = new HashSet<string>(StringComparer.Ordinal) { "model", "impl", "bochs", "kvm", "intent" };

    /// <summary>The operations in words, for target-check and error messages.</summary>
    public string OperationText => (Operations & ~TargetOperations.Journal) is var ops && ops == TargetOperations.None ? "none" : ops.ToString().Replace(", ", " ", StringComparison.Ordinal);

    /// <summary>The SDK keeps a journal: a case's operations can be sent ahead (PROTOCOL.md "Journal mode").</summary>
    public bool Journal => Operations.HasFlag(TargetOperations.Journal);

    /// <summary>Whether its own lookup answers WALKs of guest-linear (else guest-physical) addresses.</summary>
    public bool Answers(bool linear) => Walkers.HasFlag(linear ? TargetWalkers.GuestLinear : TargetWalkers.GuestPhysical);
}
