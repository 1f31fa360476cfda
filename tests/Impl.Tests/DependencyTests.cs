using EptFuzz.Impl.Hypervisor;

namespace EptFuzz.Impl.Tests;

/// <summary>The implementation depends on the contract only: a shared decoder with the reference would hide bugs.</summary>
public sealed class DependencyTests
{
    [Fact]
    public void Implementation_ReferencesOnlyTheContractAndTheRuntime()
    {
        string[] references = typeof(EptHypervisor).Assembly.GetReferencedAssemblies()
            .Select(a => a.Name ?? "")
            .Where(n => !n.StartsWith("System", StringComparison.Ordinal) && n != "netstandard" && n != "mscorlib")
            .ToArray();
        Assert.Equal(["EptFuzz.Contract"], references);
    }
}
