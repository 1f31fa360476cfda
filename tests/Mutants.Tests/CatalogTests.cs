namespace EptFuzz.Mutants.Tests;

/// <summary>The catalog itself: big enough, named once, and still applicable to today's implementation source.</summary>
public sealed class CatalogTests
{
    private static readonly ImplCompiler Compiler = ImplCompiler.FromRepository();

    public static TheoryData<string> Names() => [.. MutantCatalog.All.Concat(MutantCatalog.Bookkeeping).Select(m => m.Name)];

    [Fact]
    public void Catalog_HasAtLeastTwentyBugs_WithUniqueNamesAndPatchesThatChangeSomething()
    {
        Assert.True(MutantCatalog.All.Count >= 20, $"the catalog has {MutantCatalog.All.Count} bugs; issue 7 asks for at least 20");
        Assert.Equal(MutantCatalog.All.Count, MutantCatalog.All.Select(m => m.Name).Distinct(StringComparer.Ordinal).Count());
        Assert.All(MutantCatalog.All, m =>
        {
            Assert.NotEqual(m.Find, m.Replace);
            Assert.False(string.IsNullOrWhiteSpace(m.Description));
            Assert.False(string.IsNullOrWhiteSpace(m.Breaks));
        });
    }

    /// <summary>A refactor of the implementation breaks the catalog loudly, never silently.</summary>
    [Theory]
    [MemberData(nameof(Names))]
    public void FindText_OccursExactlyOnce_InTheImplementationSource(string name)
    {
        Mutant m = MutantCatalog.All.Concat(MutantCatalog.Bookkeeping).Single(x => x.Name == name);
        Assert.True(Compiler.Sources.ContainsKey(m.File), $"{name}: targets/Impl/{m.File} does not exist");
        Assert.Equal(1, Compiler.Occurrences(m));
    }

    [Fact]
    public void Compiler_ReadsTheImplementation_NotItsBuildOutput()
    {
        Assert.Contains("Hypervisor/EptHypervisor.cs", Compiler.Sources.Keys);
        Assert.DoesNotContain(Compiler.Sources.Keys, k => k.StartsWith("obj/", StringComparison.Ordinal) || k.StartsWith("bin/", StringComparison.Ordinal));
    }

    [Fact]
    public void Patch_RefusesAFindTextThatIsMissingOrAmbiguous()
    {
        var missing = new Mutant("Missing", "Ept/EptBits.cs", "no such text anywhere", "x", "d", "b");
        var ambiguous = new Mutant("Ambiguous", "Ept/EptBits.cs", "public const ulong", "x", "d", "b");
        Assert.Equal(0, Compiler.Occurrences(missing));
        Assert.True(Compiler.Occurrences(ambiguous) > 1);
        Assert.Throws<InvalidOperationException>(() => Compiler.Patch(missing));
        Assert.Throws<InvalidOperationException>(() => Compiler.Patch(ambiguous));
    }
}
