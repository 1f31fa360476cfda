using System.Reflection;
using System.Runtime.Loader;
using EptFuzz.Contract;

namespace EptFuzz.Mutants.Tests;

/// <summary>
/// A compiled implementation, loaded into its own collectible context. The context resolves
/// nothing itself, so every reference (the contract, the BCL) binds to the default context and
/// the compiled types implement the very <see cref="IEptHypervisor"/> and <see cref="ITarget"/>
/// the harness uses.
/// </summary>
public sealed class CompiledImpl : IDisposable
{
    private const string HypervisorType = "EptFuzz.Impl.Hypervisor.EptHypervisor";
    private const string TargetType = "EptFuzz.Impl.Target.ImplTarget";

    private readonly IsolatedContext context;
    private readonly ConstructorInfo hypervisor;
    private readonly object?[] hypervisorArguments;
    private readonly ConstructorInfo target;
    private readonly object?[] targetArguments;

    private CompiledImpl(string name, IsolatedContext context, Assembly assembly)
    {
        Name = name;
        this.context = context;
        Assembly = assembly;
        (hypervisor, hypervisorArguments) = DefaultConstructor(assembly, HypervisorType);
        (target, targetArguments) = DefaultConstructor(assembly, TargetType);
    }

    public string Name { get; }

    public Assembly Assembly { get; }

    public static CompiledImpl Load(string name, Stream image)
    {
        var context = new IsolatedContext($"mutant {name}");
        Assembly assembly = context.LoadFromStream(image);
        return new CompiledImpl(name, context, assembly);
    }

    /// <summary>A fresh hypervisor with its default settings (the shipping default pool).</summary>
    public IEptHypervisor CreateHypervisor() => (IEptHypervisor)hypervisor.Invoke(hypervisorArguments);

    /// <summary>The implementation's virtual CPU as a translator, with its default settings (a TLB).</summary>
    public ITarget CreateTarget() => (ITarget)target.Invoke(targetArguments);

    public void Dispose() => context.Unload();

    /// <summary>The public constructor, called with every parameter at its declared default.</summary>
    private static (ConstructorInfo, object?[]) DefaultConstructor(Assembly assembly, string typeName)
    {
        Type type = assembly.GetType(typeName, throwOnError: true)!;
        ConstructorInfo ctor = type.GetConstructors().OrderBy(c => c.GetParameters().Length).First();
        object?[] arguments = [.. ctor.GetParameters().Select(p => p.HasDefaultValue
            ? p.DefaultValue
            : throw new InvalidOperationException($"{typeName}({p.Name}) has no default value; the mutant harness cannot choose one"))];
        return (ctor, arguments);
    }

    private sealed class IsolatedContext(string name) : AssemblyLoadContext(name, isCollectible: true)
    {
        // Null: the default context answers, so the contract assembly is shared, not loaded twice.
        protected override Assembly? Load(AssemblyName assemblyName) => null;
    }
}
