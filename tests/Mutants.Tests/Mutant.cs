namespace EptFuzz.Mutants.Tests;

/// <summary>
/// One realistic EPT bug as a textual patch of the implementation: in <see cref="File"/> (relative to
/// targets/Impl), the text <see cref="Find"/>, which must occur exactly once, becomes
/// <see cref="Replace"/>. The shipping source is never changed; the patch lives only in the
/// compilation this test makes.
/// </summary>
/// <param name="Name">PascalCase, unique: the row of the detection table.</param>
/// <param name="Description">What the buggy code does, in one line.</param>
/// <param name="Breaks">The SDM rule or API contract it violates (rule ids of shared/spec/ept-rules.md where one fits).</param>
public sealed record Mutant(string Name, string File, string Find, string Replace, string Description, string Breaks)
{
    public override string ToString() => Name;
}
